"""The config file's format: pydantic models of its blocks, durations, names, and its JSON Schema.

Parsing only: :mod:`syncer.config` turns these models into the frozen values the rest of the code
uses. Keys are camelCase aliases; unknown keys are forbidden; validators raise messages that never
contain the offending value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from backends import base, durations
from syncer.core import dockerconfig

Duration = durations.Duration
parse_duration = durations.parse_duration

# --- names -------------------------------------------------------------------------------------


def _format(pattern: str, max_length: int, message: str) -> Any:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > max_length or not regex.match(value):
            raise PydanticCustomError("config_name_format", message)
        return value

    return check


def _service_account(value: str) -> str:
    return value if value == "*" else _check_subdomain(value)


def _registry(value: str) -> str:
    if value != value.strip():
        raise PydanticCustomError("config_registry", "must not start or end with white space")
    try:
        return dockerconfig.normalize_registry(value)
    except dockerconfig.PayloadError:
        raise PydanticCustomError("config_registry", dockerconfig.REGISTRY_HINT) from None


_SUBDOMAIN_BODY = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_SUBDOMAIN = rf"^{_SUBDOMAIN_BODY}$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUALIFIED_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
# Kubernetes' IsQualifiedName: [DNS subdomain of at most 253 characters "/"] name (at most 63).
# Portable (the ECMA-262 and RE2 subset: no lookaround, no named groups), so editors and helm can
# use the schema; the prefix's 253-character limit is checked by _label_key alone.
_LABEL_KEY = rf"^({_SUBDOMAIN_BODY}/)?{_QUALIFIED_NAME}$"
OBJECT_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"
_SUBDOMAIN_MSG = (
    "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending "
    "with a letter or digit, at most 253 characters"
)
OBJECT_NAME_MSG = (
    "invalid name: use letters, digits, '.', '_' and '-', starting and ending with a letter or "
    "digit, at most 63 characters"
)
_LABEL_NAME_RULE = (
    "at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
)
_check_subdomain = _format(_SUBDOMAIN, 253, _SUBDOMAIN_MSG)
INSTANCE_MSG = (
    "must be an installation name: lower-case letters, digits, '-' and '.', starting and ending "
    "with a letter or digit, at most 253 characters (e.g. <namespace>.<release>)"
)
check_instance = _format(_SUBDOMAIN, 253, INSTANCE_MSG)
check_object_name = _format(OBJECT_NAME_PATTERN, 63, OBJECT_NAME_MSG)
_full_name = re.compile(rf"^{_QUALIFIED_NAME}$")
_full_subdomain = re.compile(_SUBDOMAIN)


def _label_key(value: str) -> str:
    """A label key as Kubernetes validates it (``IsQualifiedName``), one message per rule."""
    prefix, slash, name = value.rpartition("/")
    if "/" in prefix:
        message = "must be a label key: [prefix/]name with at most one '/'"
    elif slash and not (len(prefix) <= 253 and _full_subdomain.match(prefix)):
        message = (
            "must be a label key: the prefix before '/' must be a DNS-1123 subdomain (lower-case "
            "letters, digits, '-' and '.') of at most 253 characters"
        )
    elif not _full_name.match(name):
        message = f"must be a label key: the name must be {_LABEL_NAME_RULE}"
    else:
        return value
    raise PydanticCustomError("config_label_key", message)


def _schema(pattern: str, max_length: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "maxLength": max_length})


DnsSubdomain = Annotated[str, AfterValidator(_check_subdomain), _schema(_SUBDOMAIN, 253)]
Instance = Annotated[
    str,
    AfterValidator(check_instance),
    WithJsonSchema({"type": "string", "pattern": _SUBDOMAIN, "maxLength": 253,
                    "default": "default",
                    "description": "This installation's name: it owns only what it wrote. "
                    "Two installations in one cluster need different names."}),
]
NamespaceName = Annotated[
    str,
    AfterValidator(_format(_DNS_LABEL, 63, "must be a namespace name (DNS-1123 label)")),
    _schema(_DNS_LABEL, 63),
]
ServiceAccountName = Annotated[
    str,
    AfterValidator(_service_account),
    WithJsonSchema(
        {"anyOf": [{"const": "*"}, {"type": "string", "pattern": _SUBDOMAIN, "maxLength": 253}]}
    ),
]
_LABEL_KEY_SCHEMA = {"type": "string", "pattern": _LABEL_KEY, "maxLength": 317}
_LABEL_VALUE_SCHEMA = {"type": "string", "pattern": _LABEL_VALUE, "maxLength": 63}
LabelKey = Annotated[str, AfterValidator(_label_key), WithJsonSchema(_LABEL_KEY_SCHEMA)]
LabelValue = Annotated[
    str,
    AfterValidator(
        _format(_LABEL_VALUE, 63, f"must be a label value: empty or {_LABEL_NAME_RULE}")
    ),
    WithJsonSchema(_LABEL_VALUE_SCHEMA),
]
MatchLabels = Annotated[
    dict[LabelKey, LabelValue],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": _LABEL_KEY_SCHEMA,
            "additionalProperties": _LABEL_VALUE_SCHEMA,
        }
    ),
]
ObjectName = Annotated[str, AfterValidator(check_object_name), _schema(OBJECT_NAME_PATTERN, 63)]
NonEmpty = Annotated[str, Field(min_length=1)]
Registry = Annotated[
    str,
    AfterValidator(_registry),
    WithJsonSchema({"type": "string", "pattern": dockerconfig.REGISTRY_PATTERN}),
]

# --- the file's models (parsing only; the rest of the code sees the dataclasses below) -----------


class Block(base.StrictBlock):
    """A block of the file: camelCase keys only, no unknown keys, no coercion, immutable. The
    backends' models derive from the same ``base.StrictBlock``: one spelling, strict types."""


# Rules between keys that syncer.config checks, also stated in the schema (JSON Schema can say
# these; references between blocks it cannot).
_STAR_ALONE: dict[str, Any] = {
    "if": {"type": "array", "contains": {"const": "*"}},
    "then": {"maxItems": 1},
}
_VALUES_BY_OPERATOR: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"operator": {"enum": ["In", "NotIn"]}}, "required": ["operator"]},
            "then": {
                "properties": {"values": {"type": "array", "minItems": 1}},
                "required": ["values"],
            },
        },
        {
            "if": {
                "properties": {"operator": {"enum": ["Exists", "DoesNotExist"]}},
                "required": ["operator"],
            },
            "then": {"properties": {"values": {"maxItems": 0}}},
        },
    ]
}
_SOME_SELECTION: dict[str, Any] = {
    "anyOf": [
        {"properties": {"names": {"minItems": 1}}, "required": ["names"]},
        {"properties": {"patterns": {"minItems": 1}}, "required": ["patterns"]},
        {"properties": {"selector": {"type": "object"}}, "required": ["selector"]},
    ]
}


class DefaultsBlock(Block):
    refresh_interval: Duration = Field(
        60.0, description="How often each credential is read (token credentials: by expiry)."
    )
    secret_name: DnsSubdomain = "regcred"  # noqa: S105 - a Secret name, not a secret
    service_accounts: list[ServiceAccountName] = Field(
        default_factory=lambda: ["default"], json_schema_extra=_STAR_ALONE
    )
    prune: bool = Field(True, description="Remove what we manage when a namespace stops matching.")
    recycle_pods: bool = Field(False, description="Evict Pods stuck pulling without the Secret.")


class FieldsBlock(Block):
    username: NonEmpty = "username"
    password: NonEmpty = "password"  # noqa: S105 - a key name, not a secret
    email: NonEmpty = "email"


class VerifyBlock(Block):
    ca_cert: NonEmpty | None = Field(None, description="PEM file of the registry's CA.")
    insecure_skip_verify: bool = Field(False, description="Skip TLS verification (warned).")
    plain_http: bool = Field(False, description="Talk to the registry over plain http.")


def _verify_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    return "block" if isinstance(value, dict) else None


Verify = Annotated[
    Annotated[bool, Tag("bool")] | Annotated[VerifyBlock, Tag("block")],
    Discriminator(
        _verify_kind,
        custom_error_type="config_verify",
        custom_error_message="expected true, false or a mapping (caCert, insecureSkipVerify, "
        "plainHttp)",
    ),
]


class CredentialBlock(Block):
    backend: str = Field(description="Name of a block under `backends`.")
    registry: Registry | None = Field(None, description="Registry of basic credentials.")
    fields: FieldsBlock | None = Field(None, description="Payload key names of basic credentials.")
    refresh_interval: Duration | None = None
    verify: Verify | None = Field(
        None, description="Log in to the registry before publishing a new value."
    )


# Keys of CredentialBlock that a credential of a token-issuing backend must not set: its
# registry is the token's proxyEndpoint, and it is renewed by expiry (renewBefore).
TOKEN_FORBIDDEN = {
    "registry": "the registry is the host of the token's proxyEndpoint",
    "refreshInterval": (
        "token credentials are renewed by expiry (renewBefore), not on an interval"
    ),
}


class RequirementBlock(Block):
    model_config = ConfigDict(json_schema_extra=_VALUES_BY_OPERATOR)

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] | None = None


class SelectorBlock(Block):
    match_labels: MatchLabels = Field(default_factory=dict)
    match_expressions: list[RequirementBlock] = Field(default_factory=list)


class NamespacesBlock(Block):
    model_config = ConfigDict(json_schema_extra=_SOME_SELECTION)

    names: list[NamespaceName] = Field(default_factory=list)
    patterns: list[NonEmpty] = Field(default_factory=list, description="Shell-style globs.")
    selector: SelectorBlock | None = None
    exclude: list[NonEmpty] = Field(default_factory=list, description="Names or globs.")


class MappingBlock(Block):
    name: ObjectName
    namespaces: NamespacesBlock
    secret_name: DnsSubdomain | None = None
    credentials: list[str] = Field(
        description="Credential names, merged in this order.",
        json_schema_extra={"minItems": 1, "uniqueItems": True},
    )
    service_accounts: list[ServiceAccountName] | None = Field(None, json_schema_extra=_STAR_ALONE)
    adopt_existing: bool = False
    prune: bool | None = None
    recycle_pods: bool | None = Field(
        None, description="Evict Pods stuck pulling without this Secret (default from defaults)."
    )


TOP_LEVEL = ("version", "instance", "defaults", "backends", "credentials", "mappings")
COMMON_KEYS = tuple(f.alias or n for n, f in CredentialBlock.model_fields.items())
