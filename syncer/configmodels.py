"""The config file's format: pydantic models of its blocks, durations, names, and its JSON Schema.

Parsing only: :mod:`syncer.config` turns these models into the frozen values the rest of the code
uses. Keys are camelCase aliases; unknown keys are forbidden; validators raise messages that never
contain the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

import backends
from backends import base
from syncer import dockerconfig

# --- durations and names -------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|h|m|s))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HINT = "expected a duration such as 30s, 5m, 1h, 1m30s, 250ms or a number of seconds"


def parse_duration(value: str | float) -> float:
    """Seconds in ``"30s"``, ``"5m"``, ``"1h"``, ``"1m30s"``, ``"250ms"`` or a bare number; > 0."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(_DURATION_HINT)
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            seconds = float(text)
        elif _DURATION.match(text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(_DURATION_HINT)
    else:
        seconds = float(value)
    if not 0 < seconds < float("inf"):
        raise ValueError("must be a duration greater than zero")
    return seconds


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


def _format(pattern: str, max_length: int, message: str) -> Any:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > max_length or not regex.match(value):
            raise PydanticCustomError("name_format", message)
        return value

    return check


def _service_account(value: str) -> str:
    return value if value == "*" else _check_subdomain(value)


def _registry(value: str) -> str:
    try:
        return dockerconfig.normalize_registry(value)
    except dockerconfig.PayloadError:
        raise PydanticCustomError("registry", "not a valid registry (host[:port][/path])") from None


_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_LABEL_NAME = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
_LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
_OBJECT_NAME = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
_SUBDOMAIN_MSG = (
    "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending "
    "with a letter or digit, at most 253 characters"
)
OBJECT_NAME_MSG = (
    "invalid name: use letters, digits, '.', '_' and '-', starting and ending with a letter or "
    "digit, at most 63 characters"
)
_check_subdomain = _format(_SUBDOMAIN, 253, _SUBDOMAIN_MSG)
check_object_name = _format(_OBJECT_NAME, 63, OBJECT_NAME_MSG)


def _schema(pattern: str, max_length: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "maxLength": max_length})


Duration = Annotated[
    float,
    PlainValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": r"^([0-9]+(\.[0-9]+)?(ms|h|m|s))+$|^[0-9]+(\.[0-9]+)?$",
                },
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "A duration: 30s, 5m, 1h, 1m30s, 250ms, or a number of seconds.",
        }
    ),
]
DnsSubdomain = Annotated[str, AfterValidator(_check_subdomain), _schema(_SUBDOMAIN, 253)]
NamespaceName = Annotated[
    str,
    AfterValidator(_format(_DNS_LABEL, 63, "must be a namespace name (DNS-1123 label)")),
    _schema(_DNS_LABEL, 63),
]
ServiceAccountName = Annotated[
    str,
    AfterValidator(_service_account),
    WithJsonSchema({"anyOf": [{"const": "*"}, {"type": "string", "pattern": _SUBDOMAIN}]}),
]
LabelKey = Annotated[
    str,
    AfterValidator(_format(_LABEL_KEY, 317, "must be a label key ([prefix/]name)")),
    _schema(_LABEL_KEY, 317),
]
LabelValue = Annotated[
    str,
    AfterValidator(_format(_LABEL_NAME, 63, "must be a label value (at most 63 characters)")),
    _schema(_LABEL_NAME, 63),
]
ObjectName = Annotated[str, AfterValidator(check_object_name), _schema(_OBJECT_NAME, 63)]
NonEmpty = Annotated[str, Field(min_length=1)]
Registry = Annotated[
    str, AfterValidator(_registry), WithJsonSchema({"type": "string", "minLength": 1})
]

# --- the file's models (parsing only; the rest of the code sees the dataclasses below) -----------


class Block(pydantic.BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, alias_generator=to_camel, validate_by_name=False
    )


class DefaultsBlock(Block):
    refresh_interval: Duration = Field(60.0, description="How often each credential is read.")
    secret_name: DnsSubdomain = "regcred"  # noqa: S105 - a Secret name, not a secret
    service_accounts: list[ServiceAccountName] = Field(default_factory=lambda: ["default"])
    prune: bool = Field(True, description="Remove what we manage when a namespace stops matching.")
    recycle_pods: bool = Field(False, description="Evict Pods stuck pulling without the Secret.")


class FieldsBlock(Block):
    username: NonEmpty = "username"
    password: NonEmpty = "password"  # noqa: S105 - a key name, not a secret
    email: NonEmpty = "email"


class CredentialBlock(Block):
    backend: str = Field(description="Name of a block under `backends`.")
    registry: Registry | None = Field(None, description="Registry of basic credentials.")
    fields: FieldsBlock | None = Field(None, description="Payload key names of basic credentials.")
    refresh_interval: Duration | None = None


class RequirementBlock(Block):
    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] | None = None


class SelectorBlock(Block):
    match_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    match_expressions: list[RequirementBlock] = Field(default_factory=list)


class NamespacesBlock(Block):
    names: list[NamespaceName] = Field(default_factory=list)
    patterns: list[NonEmpty] = Field(default_factory=list, description="Shell-style globs.")
    selector: SelectorBlock | None = None
    exclude: list[NonEmpty] = Field(default_factory=list, description="Names or globs.")


class MappingBlock(Block):
    name: ObjectName
    namespaces: NamespacesBlock
    secret_name: DnsSubdomain | None = None
    credentials: list[str] = Field(description="Credential names, merged in this order.")
    service_accounts: list[ServiceAccountName] | None = None
    adopt_existing: bool = False
    prune: bool | None = None
    recycle_pods: bool | None = Field(
        None, description="Evict Pods stuck pulling without this Secret (default from defaults)."
    )


TOP_LEVEL = ("version", "defaults", "backends", "credentials", "mappings")
COMMON_KEYS = tuple(f.alias or n for n, f in CredentialBlock.model_fields.items())


# --- JSON Schema ---------------------------------------------------------------------------------


def schema(*, plugins: Mapping[str, base.BackendPlugin] | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file, with every plugin's blocks."""
    plugins = backends.plugins() if plugins is None else plugins
    backend_models: list[Any] = []
    credential_models: list[Any] = []
    common: dict[str, Any] = {n: (f.annotation, f) for n, f in CredentialBlock.model_fields.items()}
    for type_name, plugin in sorted(plugins.items()):
        stem = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", type_name))
        backend_models.append(
            pydantic.create_model(
                f"{stem}Backend",
                __base__=plugin.settings_model,
                type=(Literal[type_name], Field(alias="type", description="Backend type.")),
            )
        )
        credential_models.append(
            pydantic.create_model(f"{stem}Credential", __base__=plugin.ref_model, **common)
        )
    file_model = pydantic.create_model(
        "PullsecretSyncerConfig",
        __base__=Block,
        version=(Literal[1], Field(description="Format version; must be 1.")),
        defaults=(DefaultsBlock | None, None),
        backends=(_named(backend_models), Field(description="Backend blocks by name.")),
        credentials=(_named(credential_models), Field(description="Credential blocks by name.")),
        mappings=(list[MappingBlock], ...),
    )
    document: dict[str, Any] = _untitled(file_model.model_json_schema(by_alias=True))
    for section in ("backends", "credentials"):
        document["properties"][section]["propertyNames"] = {
            "pattern": _OBJECT_NAME,
            "maxLength": 63,
        }
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "pullsecret-syncer configuration"
    return document


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
