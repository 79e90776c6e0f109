"""The JSON Schema (draft 2020-12) of the config file, built from the models and the plugins.

``config/schema.json`` is this schema as ``python -m syncer.config`` prints it (``make schema``);
a test fails when the file is stale. The schema checks what a schema can (keys, types, formats,
bounds); references between blocks (a credential naming an unknown backend) are the validators'
alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import pydantic
from pydantic import Field
from pydantic.alias_generators import to_camel

import backends
from backends import base
from syncer.config import formats, models

# $defs names: the blocks as the file's readers know them (the models are named for the code),
# without the models' docstrings, which are written for the code's readers.
_DEF_NAMES = {
    "FieldsBlock": "FieldsBlock",
    "Defaults": "DefaultsBlock",
    "VerifySpec": "VerifyBlock",
    "Requirement": "RequirementBlock",
    "LabelSelector": "SelectorBlock",
    "NamespaceSelection": "NamespacesBlock",
    "MappingSpec": "MappingBlock",
}


def schema(*, plugins: Mapping[str, base.BackendPlugin] | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file, with every plugin's blocks."""
    plugins = backends.plugins() if plugins is None else plugins
    backend_models: list[Any] = []
    credential_models: list[Any] = []
    common: dict[str, Any] = {
        n: (f.annotation, f)
        for n, f in models.CredentialSpec.model_fields.items()
        if (f.alias or n) in models.CREDENTIAL_KEYS
    }
    for type_name, plugin in sorted(plugins.items()):
        stem = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", type_name))
        backend_models.append(
            pydantic.create_model(
                f"{stem}Backend",
                __base__=plugin.settings_model,
                # a Literal of a runtime value: fine for pydantic, opaque to the type checker
                type=(Literal[type_name], Field(alias="type", description="Backend type.")),  # type: ignore[arg-type,unused-ignore]
            )
        )
        allowed = common
        if getattr(plugin, "issues_tokens", False):
            allowed = {
                n: c for n, c in common.items() if to_camel(n) not in models.TOKEN_FORBIDDEN
            }
        credential_models.append(
            pydantic.create_model(f"{stem}Credential", __base__=plugin.ref_model, **allowed)
        )
    file_model = pydantic.create_model(
        "PullsecretSyncerConfig",
        __base__=base.StrictBlock,
        version=(Literal[1], Field(description="Format version; must be 1.")),
        instance=(formats.Instance | None, None),
        defaults=(models.Defaults | None, None),
        backends=(_named(backend_models), Field(description="Backend blocks by name.")),
        credentials=(_named(credential_models), Field(description="Credential blocks by name.")),
        mappings=(list[models.MappingSpec], ...),
    )
    document: dict[str, Any] = _renamed(_untitled(file_model.model_json_schema(by_alias=True)))
    for section in ("backends", "credentials"):
        document["properties"][section]["propertyNames"] = {
            "pattern": formats.OBJECT_NAME_PATTERN,
            "maxLength": 63,
        }
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "pullsecret-syncer configuration"
    return document


def schema_json() -> str:
    """``schema()`` as written to ``config/schema.json`` (sorted keys, indent 2, newline)."""
    return json.dumps(schema(), sort_keys=True, indent=2) + "\n"


def _renamed(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its $defs (and the references to them) named by ``_DEF_NAMES``."""
    text = json.dumps(document)
    for old, new in _DEF_NAMES.items():
        text = text.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
    renamed: dict[str, Any] = json.loads(text)
    defs = renamed.get("$defs", {})
    renamed["$defs"] = {_DEF_NAMES.get(name, name): body for name, body in defs.items()}
    for name in _DEF_NAMES.values():
        renamed["$defs"].get(name, {}).pop("description", None)
    return renamed


def _untitled(node: Any) -> Any:
    """The schema without pydantic's generated titles ("Refreshinterval"), which only add noise."""
    if isinstance(node, list):
        return [_untitled(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: _untitled(sub) for name, sub in value.items()}
        elif key != "title" or not isinstance(value, str):
            out[key] = _untitled(value)
    return out


def _named(models: list[Any]) -> Any:
    """``dict[name, Union[models]]`` (anyOf in the schema)."""
    union: Any = models[0] if models else dict[str, Any]
    for model in models[1:]:
        union = union | model
    generic: Any = dict
    return generic[str, union]  # names: `propertyNames` added by schema()
