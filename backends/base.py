"""The one interface every credential backend implements, its value types and its error tree.

A backend reads one secret (a :class:`CredentialRef`) and returns its raw :class:`Payload`; turning
that payload into registry auths is `syncer.core.dockerconfig`'s job. Library exceptions never leave
a backend module: they are wrapped in a :class:`BackendError` subclass whose message names paths and
fields, never values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pydantic
from pydantic import alias_generators


class BackendError(Exception):
    """A backend could not deliver a credential. Messages never contain secret values."""

    retryable = False


class NotFound(BackendError):
    """The secret (or the requested version/stage of it) does not exist."""


class AccessDenied(BackendError):
    """The backend refused us (bad token, missing policy, expired login)."""


class Unavailable(BackendError):
    """The backend is down, slow, throttling or answered 5xx; worth retrying."""

    retryable = True


class InvalidPayload(BackendError):
    """The secret exists but its content is not something we can use."""


class Misconfigured(BackendError):
    """The backend's settings cannot work as given (e.g. no address in the config nor in the
    environment). Raised by ``BackendPlugin.factory``: a config error, not a failed read."""


@dataclass(frozen=True, slots=True)
class CredentialRef:
    """Where a credential lives in its backend.

    ``name`` is the credential's name in the config (for messages and metrics); ``options`` is
    the backend-specific part of the credential block, an instance of the backend's ``ref_model``
    (e.g. vault's ``mount``, ``path``, ``kv_version``).
    """

    name: str
    options: pydantic.BaseModel


@dataclass(frozen=True, slots=True)
class Payload:
    """The raw content of one backend secret: a JSON-like object. Redacted in ``repr``."""

    data: Mapping[str, Any] = field(repr=False)
    version: str | None = None  # backend version id when known (KV version, AWS VersionId)
    expires_at: float | None = None  # Unix seconds when an issued token stops working (aws-ecr)


class Backend(Protocol):
    """A connected backend. ``fetch`` raises only :class:`BackendError` subclasses."""

    def fetch(self, ref: CredentialRef) -> Payload: ...

    def check(self) -> None:
        """Log in / verify reachability without reading a secret; raises BackendError."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BackendPlugin:
    """What the ``pullsecret_syncer.backends`` entry point of a backend type resolves to.

    ``settings_model`` validates the backend block (without its ``type`` key);
    ``ref_model`` validates the backend-specific keys of a credential block. Both forbid
    unknown keys. ``factory(name, settings)`` builds a :class:`Backend` without network I/O
    (connections and logins happen lazily); it raises :class:`Misconfigured` for settings that
    cannot work (e.g. a missing address that the environment does not supply either).

    ``issues_tokens`` marks a backend whose every fetch issues a new, expiring token (aws-ecr):
    its payloads carry ``expires_at``, it is renewed before expiry rather than re-read every
    ``refreshInterval``, and its registry key comes from the token, not from ``registry``.
    """

    type_name: str
    settings_model: type[pydantic.BaseModel]
    ref_model: type[pydantic.BaseModel]
    factory: Callable[[str, Any], Backend]
    issues_tokens: bool = False


class StrictBlock(pydantic.BaseModel):
    """A base for ``settings_model`` / ``ref_model``: keys exactly as the config spells them
    (camelCase; snake_case is an unknown key), no unknown keys, no coercion (``"yes"`` is not a
    boolean, ``1`` is not a string), immutable once validated."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=False,
    )
