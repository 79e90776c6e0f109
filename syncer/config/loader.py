"""Load the YAML config file (docs/configuration.md) into a :class:`~syncer.config.models.Config`.

The loader reads the document (:mod:`syncer.config.yamldoc`), checks its top level, and hands
each block to the model that validates it: its own models for the syncer's keys, the models of
the backend plugin a block names for the backend's keys. What a block's rules need from the rest
of the file (the defaults, the declared names) travels in the validation
:class:`~syncer.config.models.Context`, filled in file order. Every problem becomes one line
``<file>: <key path>: <message>`` of a :class:`ConfigError`; no message contains a value from the
file other than names and references.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
from pydantic_core import PydanticCustomError

import backends
from backends import base
from syncer.config import formats, yamldoc
from syncer.config.models import (
    CREDENTIAL_KEYS,
    TOP_LEVEL,
    BackendSpec,
    Config,
    Context,
    CredentialSpec,
    Defaults,
    MappingSpec,
)
from syncer.config.problems import ConfigError, Loc, Problems
from syncer.core import frozen


class _Unread(pydantic.BaseModel):
    """The options of a credential whose backend keys are wrong: its own keys are judged all
    the same, so that every problem of the file is reported at once."""


def load(
    path: str | os.PathLike[str], *, plugins: Mapping[str, base.BackendPlugin] | None = None
) -> Config:
    """Read and validate the config file; raises :class:`ConfigError` listing every problem."""
    plugins = backends.plugins() if plugins is None else plugins
    problems = Problems(os.fspath(path))
    raw = yamldoc.read(Path(path), problems)
    if problems:
        raise ConfigError(problems.lines)
    if not isinstance(raw, dict):
        problems.add((), "expected a mapping with keys " + ", ".join(TOP_LEVEL))
        raise ConfigError(problems.lines)
    for key in raw:
        if key not in TOP_LEVEL:
            problems.unknown_key((key,), key, TOP_LEVEL)
    for key in ("version", "backends", "credentials", "mappings"):
        if key not in raw:
            problems.add((key,), "required key is missing")
    version = raw.get("version", 1)
    if type(version) is not int or version != 1:
        problems.add(("version",), "unsupported version (expected 1)")
    instance = _instance(raw.get("instance", "default"), problems)

    context = Context(
        backends=_names_of(raw.get("backends")), credentials=_names_of(raw.get("credentials"))
    )
    given = raw.get("defaults")
    defaults = problems.validate(
        Defaults, {} if given is None else given, ("defaults",), context=context
    )
    context.defaults = defaults
    backend_specs, types = _backends(raw.get("backends", {}), plugins, problems)
    credential_specs = _credentials(raw.get("credentials", {}), types, plugins, context, problems)
    context.specs = credential_specs
    mappings = _mappings(raw.get("mappings", []), context, problems)
    if problems or defaults is None:
        raise ConfigError(problems.lines)
    return Config(
        path=Path(path).absolute(),
        defaults=defaults,
        backends=frozen.FrozenMap(backend_specs),
        credentials=frozen.FrozenMap(credential_specs),
        mappings=mappings,
        instance=instance,
    )


def _instance(raw: Any, problems: Problems) -> str:
    """The installation's name (`default` when absent)."""
    if not isinstance(raw, str):
        problems.add(("instance",), "expected a string")
        return "default"
    try:
        return str(formats.check_instance(raw))
    except PydanticCustomError:
        problems.add(("instance",), formats.INSTANCE_MSG)
        return "default"


def _names_of(section: Any) -> tuple[str, ...]:
    """The names declared in a section, valid or not (so one bad block causes one problem)."""
    return tuple(sorted(k for k in section if isinstance(k, str))) if isinstance(
        section, dict) else ()


def _named_blocks(raw: Any, section: str, problems: Problems) -> dict[str, dict[Any, Any]]:
    """The ``name -> mapping`` entries of a section that are well-formed; problems for the rest."""
    if not isinstance(raw, dict):
        problems.add((section,), "expected a mapping of names to blocks")
        return {}
    blocks: dict[str, dict[Any, Any]] = {}
    for name, block in raw.items():
        if not isinstance(name, str):
            problems.add((section,), "names must be strings")
            continue
        try:
            formats.check_object_name(name)
        except PydanticCustomError:
            problems.add((section, name), formats.OBJECT_NAME_MSG)
            continue
        if not isinstance(block, dict):
            problems.add((section, name), "expected a mapping")
            continue
        blocks[name] = block
    return blocks


def _backends(
    raw: Any, plugins: Mapping[str, base.BackendPlugin], problems: Problems
) -> tuple[dict[str, BackendSpec], dict[str, str]]:
    """Valid backends by name, and the type of every block whose type is known."""
    specs: dict[str, BackendSpec] = {}
    types: dict[str, str] = {}
    known_types = ", ".join(sorted(plugins))
    for name, block in _named_blocks(raw, "backends", problems).items():
        where = ("backends", name)
        type_name = block.get("type")
        if "type" not in block:
            problems.add((*where, "type"), f"required key is missing (one of: {known_types})")
            continue
        if not isinstance(type_name, str) or type_name not in plugins:
            problems.add((*where, "type"), f"unknown backend type (known: {known_types})")
            continue
        types[name] = type_name
        rest = {k: v for k, v in block.items() if k != "type"}
        settings = problems.validate(plugins[type_name].settings_model, rest, where)
        if settings is not None:
            specs[name] = BackendSpec(name=name, type=type_name, settings=settings)
    return specs, types


def _credentials(
    raw: Any,
    backend_types: Mapping[str, str],
    plugins: Mapping[str, base.BackendPlugin],
    context: Context,
    problems: Problems,
) -> dict[str, CredentialSpec]:
    specs: dict[str, CredentialSpec] = {}
    for name, block in _named_blocks(raw, "credentials", problems).items():
        where: Loc = ("credentials", name)
        backend = block.get("backend")
        type_name = backend_types.get(backend) if isinstance(backend, str) else None
        # without a backend type, the backend-specific keys cannot be judged
        plugin = plugins[type_name] if type_name is not None else None
        tokens = bool(getattr(plugin, "issues_tokens", False))
        theirs = Problems(problems.file)  # the backend's problems follow the syncer's own
        options = None
        if plugin is not None:
            options = theirs.validate(
                plugin.ref_model,
                {k: v for k, v in block.items() if k not in CREDENTIAL_KEYS},
                where,
                extra_allowed=CREDENTIAL_KEYS,
            )
        context.token_type = type_name if tokens else None
        ours = {k: v for k, v in block.items() if k in CREDENTIAL_KEYS}
        ref = base.CredentialRef(name=name, options=_Unread() if options is None else options)
        spec = problems.validate(
            CredentialSpec,
            {**ours, "name": name, "ref": ref, "issuesTokens": tokens},
            where,
            context=context,
        )
        problems.lines += theirs.lines
        if spec is not None and options is not None:
            specs[name] = spec
    context.token_type = None
    return specs


def _mappings(raw: Any, context: Context, problems: Problems) -> tuple[MappingSpec, ...]:
    if not isinstance(raw, list):
        problems.add(("mappings",), "expected a list")
        return ()
    specs: list[MappingSpec] = []
    for index, item in enumerate(raw):
        context.index = index
        spec = problems.validate(MappingSpec, item, ("mappings", index), context=context)
        if spec is not None:
            specs.append(spec)
    return tuple(specs)
