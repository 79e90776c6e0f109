"""The config file's resolved values: frozen dataclasses with every default applied. Pure.

:mod:`syncer.config` builds them from the file (and re-exports them); the rest of the code reads
only these, never the pydantic models of :mod:`syncer.configmodels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pydantic

from backends import base
from syncer.core import dockerconfig, frozen

FrozenMap = frozen.FrozenMap


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` term; ``values`` is empty for Exists/DoesNotExist."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: Mapping[str, str] = field(default_factory=FrozenMap)
    match_expressions: tuple[Requirement, ...] = ()


@dataclass(frozen=True, slots=True)
class NamespaceSelection:
    """Selected if names/patterns/selector matches and no ``exclude`` name or glob does."""

    names: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    selector: LabelSelector | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Defaults:
    refresh_interval: float = 60.0
    secret_name: str = "regcred"  # noqa: S105 - a Secret name, not a secret
    service_accounts: tuple[str, ...] = ("default",)
    prune: bool = True
    recycle_pods: bool = False


@dataclass(frozen=True, slots=True)
class VerifySpec:
    """How to log in to a credential's registries before publishing a new value (``verify``).

    ``ca_cert`` is a file path, checked when verifying (not by the loader).
    """

    ca_cert: str | None = None
    insecure_skip_verify: bool = False
    plain_http: bool = False


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A ``backends.<name>`` block; ``settings`` is an instance of its plugin's settings_model."""

    name: str
    type: str
    settings: pydantic.BaseModel = field(hash=False)  # plugin models need not be hashable


@dataclass(frozen=True, slots=True)
class CredentialSpec:
    """A ``credentials.<name>`` block with defaults applied; ``registry`` is normalized.

    ``issues_tokens``: the backend's plugin issues tokens (``aws-ecr``); such a credential has no
    ``registry`` and is renewed by expiry, so ``refresh_interval`` (the default's) does not
    schedule its reads. ``verify`` is None unless ``verify`` is true or a mapping.
    """

    name: str
    backend: str
    registry: str | None
    fields: dockerconfig.FieldNames
    refresh_interval: float
    ref: base.CredentialRef = field(hash=False)
    verify: VerifySpec | None = None
    issues_tokens: bool = False


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """A mapping with defaults applied; ``service_accounts`` is names or ``("*",)`` (every one)."""

    name: str
    namespaces: NamespaceSelection
    secret_name: str
    credentials: tuple[str, ...]
    service_accounts: tuple[str, ...]
    adopt_existing: bool
    prune: bool
    recycle_pods: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    """The whole file, resolved. ``path`` is absolute (for reloads)."""

    path: Path
    defaults: Defaults
    backends: Mapping[str, BackendSpec]
    credentials: Mapping[str, CredentialSpec]
    mappings: tuple[MappingSpec, ...]
    instance: str = "default"  # this installation's name: it owns only what it wrote
