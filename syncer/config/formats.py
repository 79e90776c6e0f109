"""The formats of the config file's values: names, label keys, registries, as pydantic types that
validate a value and state it in the JSON Schema (durations are ``backends.durations``', shared
with the backends' settings); and :class:`Via`, for a key the file writes in one form and the
code reads in another.

Validators raise messages that never contain the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, WithJsonSchema, WrapValidator
from pydantic_core import PydanticCustomError, core_schema

from syncer.core import dockerconfig

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


# --- rules between keys ---------------------------------------------------------------------

# Rules between keys that the models' validators check, also stated in the schema (JSON Schema can
# say these; references between blocks it cannot).
STAR_ALONE: dict[str, Any] = {
    "if": {"type": "array", "contains": {"const": "*"}},
    "then": {"maxItems": 1},
}
VALUES_BY_OPERATOR: dict[str, Any] = {
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
SOME_SELECTION: dict[str, Any] = {
    "anyOf": [
        {"properties": {"names": {"minItems": 1}}, "required": ["names"]},
        {"properties": {"patterns": {"minItems": 1}}, "required": ["patterns"]},
        {"properties": {"selector": {"type": "object"}}, "required": ["selector"]},
    ]
}


# --- a key written in one form, read in another --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Via:
    """``Annotated[T, Via(written, convert)]``: the file writes the key as ``written`` (validated,
    and stated so in the JSON Schema), the code reads ``convert(value, context)`` of type ``T``.

    ``context`` is the validation context (None when Python code builds a value): how a key
    left out (``None``) takes its value from the file's ``defaults``. A value that is already a
    ``keep`` instance passes as it is: Python code builds values with tuples and records, which
    YAML never produces.
    """

    written: Any
    convert: Callable[[Any, Any], Any]
    keep: type | tuple[type, ...] = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(
            value: Any, inner: core_schema.ValidatorFunctionWrapHandler, info: Any
        ) -> Any:
            if self.keep and isinstance(value, self.keep):
                return value
            return self.convert(inner(value), info.context)

        return core_schema.with_info_wrap_validator_function(
            validate, handler.generate_schema(self.written)
        )


def _items(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> Any:
    if isinstance(value, tuple):  # built by Python code, as a Via's ``keep``
        return value
    return validate(tuple(value) if type(value) is list else value)


T = TypeVar("T")
Items = Annotated[tuple[T, ...], WrapValidator(_items)]
"""A list in the file, a tuple in the code (immutable, hashable): ``Items[NamespaceName]``."""
