"""Credential backends and their registry.

Backend types are discovered through the entry-point group ``pullsecret_syncer.backends``; each
entry point resolves to a :class:`backends.base.BackendPlugin`. The built-in ones are also found
when the distribution's metadata is absent (running from a source tree).
"""

from __future__ import annotations

import importlib
from importlib import metadata

from backends import base

ENTRY_POINT_GROUP = "pullsecret_syncer.backends"
_BUILTIN = {
    "vault": "backends.vault",
    "aws-secrets-manager": "backends.aws",
    "aws-ecr": "backends.ecr",
}


def plugins() -> dict[str, base.BackendPlugin]:
    """All known backend types by their ``type`` name (built-ins first, then entry points)."""
    found: dict[str, base.BackendPlugin] = {}
    for type_name, module_name in _BUILTIN.items():
        found[type_name] = importlib.import_module(module_name).PLUGIN
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue
        plugin = ep.load()
        if not isinstance(plugin, base.BackendPlugin):
            raise TypeError(
                f"entry point {ep.name!r} of {ENTRY_POINT_GROUP} is not a BackendPlugin")
        found[ep.name] = plugin
    return found
