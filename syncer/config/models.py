"""The config file's blocks as frozen pydantic models: what the loader validates is what the code
reads, with every default applied and the rules between keys checked by validators.

Keys are camelCase aliases (the file validates by alias only, :mod:`syncer.config.loader`); Python
code builds values by field name (``MappingSpec(secret_name=...)``). Lists of the file are tuples
and maps are :class:`~syncer.core.frozen.FrozenMap`, so a config is hashable (the daemon compares
configs on reload). A key left out takes the file's ``defaults`` from the validation
:class:`Context`, which the loader passes; the rules between keys (references, duplicates, a
selection that selects nothing) are the file's and run only with it. Python code that builds a
value (tests, tools) gets the built-in defaults, and its tuples and records are taken as given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    InstanceOf,
    PlainValidator,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from backends import base
from backends.durations import Duration
from syncer.config import problems
from syncer.config.formats import (
    SOME_SELECTION,
    STAR_ALONE,
    VALUES_BY_OPERATOR,
    DnsSubdomain,
    Instance,
    Items,
    LabelKey,
    LabelValue,
    MatchLabels,
    NamespaceName,
    NonEmpty,
    ObjectName,
    Registry,
    ServiceAccountName,
    Via,
)
from syncer.core import dockerconfig, frozen


class Model(base.StrictBlock):
    """A block of the file: camelCase keys, no unknown keys, no coercion, immutable. The backends'
    models derive from the same ``base.StrictBlock``: one spelling, strict types. Assigning to a
    field raises AttributeError, as on a frozen dataclass."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


@dataclass
class Context:
    """What a block's validators need from the rest of the file; the loader fills it in order."""

    defaults: Defaults | None = None
    backends: tuple[str, ...] = ()  # declared names, valid or not
    credentials: tuple[str, ...] = ()  # declared names, valid or not
    specs: Mapping[str, CredentialSpec] = field(default_factory=dict)  # the valid ones
    token_type: str | None = None  # the credential being validated names this token backend
    index: int = 0  # of the mapping being validated
    first_index: dict[str, int] = field(default_factory=dict)  # of each mapping name


def _context(context: Any) -> Context | None:
    """The loader's context (None when Python code builds a value)."""
    return context if isinstance(context, Context) else None


def _defaulted(written: Any, key: str, keep: type | tuple[type, ...] = ()) -> Via:
    """Written as ``written`` or left out (null): then the file's ``defaults.<key>``."""

    def convert(value: Any, context: Any) -> Any:
        if value is not None:
            return tuple(value) if isinstance(value, list) else value
        found = _context(context)
        return getattr(found.defaults if found and found.defaults else Defaults(), key)

    return Via(written | None, convert, keep)


def _left_out(**kwargs: Any) -> Any:
    """The ``Field`` of a key the file may leave out, whose value validation fills in."""
    return Field(default=None, validate_default=True, **kwargs)


def _tuple(value: list[Any] | None, context: Any) -> tuple[Any, ...]:
    return tuple(value or ())


def _known(names: tuple[str, ...]) -> str:
    return f"(known: {', '.join(names) or 'none'})"


def _star_alone(accounts: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    if _context(info.context) is not None and "*" in accounts and len(accounts) > 1:
        raise problems.rule("'*' (every ServiceAccount) must be the only entry")
    return accounts


class Defaults(Model):
    """The ``defaults`` block: what credentials and mappings take when they leave a key out."""

    refresh_interval: Duration = Field(
        default=60.0,
        description="How often each credential is read (token credentials: by expiry).",
    )
    secret_name: DnsSubdomain = "regcred"  # noqa: S105 - a Secret name, not a secret
    service_accounts: Items[ServiceAccountName] = Field(
        default_factory=lambda: ("default",), json_schema_extra=STAR_ALONE
    )
    prune: bool = Field(
        default=True, description="Remove what we manage when a namespace stops matching."
    )
    recycle_pods: bool = Field(
        default=False, description="Evict Pods stuck pulling without the Secret."
    )

    _star_alone = field_validator("service_accounts")(_star_alone)


class FieldsBlock(Model):
    """How the file writes ``fields``; the code reads a :class:`dockerconfig.FieldNames`."""

    username: NonEmpty = "username"
    password: NonEmpty = "password"  # noqa: S105 - a key name, not a secret
    email: NonEmpty = "email"


def _field_names(value: FieldsBlock | None, context: Any) -> dockerconfig.FieldNames:
    given = value or FieldsBlock()
    return dockerconfig.FieldNames(
        username=given.username, password=given.password, email=given.email
    )


class VerifySpec(Model):
    """How to log in to a credential's registries before publishing a new value (``verify``).

    ``ca_cert`` is a file path, checked when verifying (not by the loader).
    """

    ca_cert: NonEmpty | None = Field(default=None, description="PEM file of the registry's CA.")
    insecure_skip_verify: bool = Field(default=False, description="Skip TLS verification (warned).")
    plain_http: bool = Field(default=False, description="Talk to the registry over plain http.")


def _verify_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    return "block" if isinstance(value, dict) else None


Verify = Annotated[
    Annotated[bool, Tag("bool")] | Annotated[VerifySpec, Tag("block")],
    Discriminator(
        _verify_kind,
        custom_error_type="config_verify",
        custom_error_message="expected true, false or a mapping (caCert, insecureSkipVerify, "
        "plainHttp)",
    ),
]


def _verify_spec(value: bool | VerifySpec | None, context: Any) -> VerifySpec | None:
    if value is True:
        return VerifySpec()
    return value or None


class CredentialSpec(Model):
    """A ``credentials.<name>`` block with defaults applied; ``registry`` is normalized.

    ``name``, ``ref`` (the backend's keys, validated by its plugin) and ``issues_tokens`` come
    from the loader. ``issues_tokens``: the backend's plugin issues tokens (``aws-ecr``); such a
    credential has no ``registry`` and is renewed by expiry, so ``refresh_interval`` (the
    default's) does not schedule its reads. ``verify`` is None unless ``verify`` is true or a
    mapping.
    """

    name: str
    backend: str = Field(description="Name of a block under `backends`.")
    registry: Registry | None = Field(default=None, description="Registry of basic credentials.")
    fields: Annotated[
        dockerconfig.FieldNames,
        Via(FieldsBlock | None, _field_names, keep=dockerconfig.FieldNames),
    ] = _left_out(description="Payload key names of basic credentials.")
    refresh_interval: Annotated[float, _defaulted(Duration, "refresh_interval")] = _left_out()
    verify: Annotated[VerifySpec | None, Via(Verify | None, _verify_spec, keep=VerifySpec)] = (
        Field(default=None, description="Log in to the registry before publishing a new value.")
    )
    ref: InstanceOf[base.CredentialRef]
    issues_tokens: bool = False

    def __hash__(self) -> int:  # ref's options are the plugin's model, which need not hash
        return hash((self.name, self.backend, self.registry, self.fields, self.refresh_interval,
                     self.verify, self.issues_tokens))

    @field_validator("backend")
    @classmethod
    def _declared(cls, backend: str, info: ValidationInfo) -> str:
        context = _context(info.context)
        if context is not None and backend not in context.backends:
            raise problems.rule(f"unknown backend {backend!r} {_known(context.backends)}")
        return backend

    @model_validator(mode="after")
    def _not_for_tokens(self, info: ValidationInfo) -> CredentialSpec:
        context = _context(info.context)
        if context is None or context.token_type is None:
            return self
        found = [
            ((key,), f"not allowed for backend type {context.token_type}: {why}")
            for key, why in TOKEN_FORBIDDEN.items()
            if _FIELD_OF[key] in self.model_fields_set
        ]
        if found:
            raise problems.rules(found)
        return self


# Keys of a credential block that a credential of a token-issuing backend must not set: its
# registry is the token's proxyEndpoint, and it is renewed by expiry (renewBefore).
TOKEN_FORBIDDEN = {
    "registry": "the registry is the host of the token's proxyEndpoint",
    "refreshInterval": (
        "token credentials are renewed by expiry (renewBefore), not on an interval"
    ),
}
_FROM_LOADER = ("name", "ref", "issues_tokens")
_FIELD_OF = {f.alias or n: n for n, f in CredentialSpec.model_fields.items()}
CREDENTIAL_KEYS = tuple(
    f.alias or n for n, f in CredentialSpec.model_fields.items() if n not in _FROM_LOADER
)
"""The keys of a credential block that are the syncer's; the others are its backend's."""


class Requirement(Model):
    """One ``matchExpressions`` term; ``values`` is empty for Exists/DoesNotExist."""

    model_config = ConfigDict(json_schema_extra=VALUES_BY_OPERATOR)

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: Annotated[
        tuple[str, ...], Via(list[LabelValue] | None, _tuple, keep=tuple)
    ] = _left_out()

    @model_validator(mode="after")
    def _values_fit_operator(self, info: ValidationInfo) -> Requirement:
        if _context(info.context) is None:
            return self
        if self.operator in ("In", "NotIn") and not self.values:
            message = f"operator {self.operator} needs at least one value"
        elif self.operator in ("Exists", "DoesNotExist") and self.values:
            message = f"operator {self.operator} takes no values"
        else:
            return self
        raise problems.rules([(("values",), message)])


class LabelSelector(Model):
    match_labels: Annotated[
        Mapping[str, str], Via(MatchLabels, lambda v, _: frozen.FrozenMap(v), keep=frozen.FrozenMap)
    ] = Field(default_factory=frozen.FrozenMap)
    match_expressions: Items[Requirement] = Field(default_factory=tuple)


class NamespaceSelection(Model):
    """Selected if names/patterns/selector matches and no ``exclude`` name or glob does."""

    model_config = ConfigDict(json_schema_extra=SOME_SELECTION)

    names: Items[NamespaceName] = Field(default_factory=tuple)
    patterns: Items[NonEmpty] = Field(default_factory=tuple, description="Shell-style globs.")
    selector: LabelSelector | None = None
    exclude: Items[NonEmpty] = Field(default_factory=tuple, description="Names or globs.")

    @model_validator(mode="after")
    def _selects_something(self, info: ValidationInfo) -> NamespaceSelection:
        if _context(info.context) is None:
            return self
        if not self.names and not self.patterns and self.selector is None:
            raise problems.rule(
                "no namespace selection: set at least one of names, patterns, selector"
            )
        return self


class MappingSpec(Model):
    """A mapping with defaults applied; ``service_accounts`` is names or ``("*",)`` (every one)."""

    name: ObjectName
    namespaces: NamespaceSelection
    secret_name: Annotated[str, _defaulted(DnsSubdomain, "secret_name")] = _left_out()
    credentials: Items[str] = Field(
        description="Credential names, merged in this order.",
        json_schema_extra={"minItems": 1, "uniqueItems": True},
    )
    service_accounts: Annotated[
        tuple[str, ...], _defaulted(list[ServiceAccountName], "service_accounts", keep=tuple)
    ] = _left_out(json_schema_extra=STAR_ALONE)
    adopt_existing: bool = False
    prune: Annotated[bool, _defaulted(bool, "prune")] = _left_out()
    recycle_pods: Annotated[bool, _defaulted(bool, "recycle_pods")] = _left_out(
        description="Evict Pods stuck pulling without this Secret (default from defaults)."
    )

    _star_alone = field_validator("service_accounts")(_star_alone)

    @field_validator("name")
    @classmethod
    def _unique(cls, name: str, info: ValidationInfo) -> str:
        context = _context(info.context)
        if context is None:
            return name
        first = context.first_index.setdefault(name, context.index)
        if first != context.index:
            raise problems.rule(f"duplicate mapping name {name!r} (first at mappings[{first}])")
        return name

    @field_validator("credentials")
    @classmethod
    def _declared(cls, names: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        context = _context(info.context)
        if context is None:
            return names
        if not names:
            raise problems.rule("must list at least one credential")
        found: list[tuple[problems.Loc, str]] = []
        pinned: dict[str, str] = {}
        for i, name in enumerate(names):
            if name not in context.credentials:
                found.append(((i,), f"unknown credential {name!r} {_known(context.credentials)}"))
            elif names.index(name) != i:
                found.append(((i,), f"credential {name!r} is listed twice"))
            elif name in context.specs and (registry := context.specs[name].registry) is not None:
                if registry in pinned:
                    found.append(
                        ((i,), f"credentials {pinned[registry]!r} and {name!r} pin the same "
                         "registry")
                    )
                pinned.setdefault(registry, name)
        if found:
            raise problems.rules(found)
        return names


class BackendSpec(Model):
    """A ``backends.<name>`` block; ``settings`` is an instance of its plugin's settings_model."""

    name: str
    type: str
    settings: InstanceOf[pydantic.BaseModel]

    def __hash__(self) -> int:  # plugin models need not be hashable
        return hash((self.name, self.type))


def _frozen_map(value: Any) -> frozen.FrozenMap:
    if not isinstance(value, Mapping):
        raise problems.rule("expected a mapping")
    return value if isinstance(value, frozen.FrozenMap) else frozen.FrozenMap(value)


class Config(Model):
    """The whole file, resolved. ``path`` is absolute (for reloads)."""

    path: InstanceOf[Path]
    defaults: Defaults
    backends: Annotated[Mapping[str, BackendSpec], PlainValidator(_frozen_map)]
    credentials: Annotated[Mapping[str, CredentialSpec], PlainValidator(_frozen_map)]
    mappings: tuple[MappingSpec, ...]
    instance: Instance = "default"  # this installation's name: it owns only what it wrote


TOP_LEVEL = ("version", "instance", "defaults", "backends", "credentials", "mappings")
