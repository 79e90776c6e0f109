"""Vault auth without I/O to Vault: the auth settings, the lease we hold, when to renew or log in.

Also reads login material (token, secret ID, ServiceAccount JWT) from files or the environment,
fresh on every login so that rotated files work. The HTTP calls live in :mod:`backends.vault`.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import alias_generators
from pydantic.config import JsonDict, JsonValue
from pydantic_core import PydanticCustomError

from backends import base

DEFAULT_JWT_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


_METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "token": ("token_file",),
    "approle": ("role_id", "secret_id_file", "mount"),
    "kubernetes": ("role", "jwt_file", "mount"),
}
_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "token": (),
    "approle": ("role_id", "secret_id_file"),
    "kubernetes": ("role",),
}


def _camel(key: str) -> str:
    return alias_generators.to_camel(key)


def _method_rules() -> JsonDict:
    """The rules of ``_fits_method`` as JSON Schema, so that config/schema.json states them too."""
    rules: list[JsonValue] = []
    for method, keys in _METHOD_KEYS.items():
        required = [_camel(k) for k in _REQUIRED_KEYS[method]]
        others = {_camel(k) for ks in _METHOD_KEYS.values() for k in ks} - {_camel(k) for k in keys}
        condition: JsonDict = {"properties": {"method": {"const": method}}}
        if method != "token":  # token is the default: it applies when method is absent too
            condition["required"] = ["method"]
        then: JsonDict = {
            "properties": {
                **{k: {"type": "null"} for k in sorted(others)},
                **{k: {"type": "string", "minLength": 1} for k in required},
            },
        }
        if required:
            then["required"] = list[JsonValue](required)
        rules.append({"if": condition, "then": then})
    return {"allOf": rules}


# Strict like every block of the file (base.StrictBlock): camelCase keys only, YAML booleans only
# (no 'yes', 1 or "true"), numbers as numbers. The docstring below is the schema's description.
class AuthSettings(base.StrictBlock):
    """How to obtain a token. Secret material comes from files or the environment, never inline."""

    model_config = pydantic.ConfigDict(json_schema_extra=_method_rules())

    method: Literal["token", "approle", "kubernetes"] = "token"  # first: the checks below use it
    token_file: str | None = pydantic.Field(
        default=None,
        validate_default=True,
        description="token: file holding the token (else $VAULT_TOKEN).",
    )
    role_id: str | None = pydantic.Field(
        default=None, validate_default=True, description="approle: the role ID."
    )
    secret_id_file: str | None = pydantic.Field(
        default=None, validate_default=True, description="approle: file holding the secret ID."
    )
    role: str | None = pydantic.Field(
        default=None, validate_default=True, description="kubernetes: the Vault role to log in as."
    )
    jwt_file: str | None = pydantic.Field(
        default=None,
        validate_default=True,
        description=f"kubernetes: JWT file (default {DEFAULT_JWT_FILE}).",
    )
    mount: str | None = pydantic.Field(
        default=None,
        validate_default=True,
        description="Auth mount path (default: the method's name).",
    )

    @pydantic.field_validator(
        "token_file", "role_id", "secret_id_file", "role", "jwt_file", "mount"
    )
    @classmethod
    def _fits_method(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        """One problem per key: required by the method, or meaningless for it."""
        method = info.data.get("method")
        if method is None or info.field_name is None:  # the method itself is invalid
            return value
        # Error types starting with "config_" tell the loader that the message holds no value
        # (so it is shown as written, not scrubbed).
        if not value and info.field_name in _REQUIRED_KEYS[method]:
            # a missing key has no location of its own in the file: name it in the message
            raise PydanticCustomError(
                "config_auth_required", f"{_camel(info.field_name)} is required for method {method}"
            )
        if value is not None and info.field_name not in _METHOD_KEYS[method]:
            raise PydanticCustomError("config_auth_method", f"does not apply to method {method}")
        return value

    @property
    def mount_path(self) -> str:
        return (self.mount or self.method).strip("/")

    @property
    def can_login(self) -> bool:
        return self.method != "token"


class Step(enum.Enum):
    """What to do with the current token before a read."""

    USE = "use"
    RENEW = "renew"
    LOGIN = "login"


@dataclass(frozen=True, slots=True)
class Lease:
    """A token and what Vault told us about its lifetime.

    ``ttl`` is the lifetime granted at login (the basis of the "renew when less than a third is
    left" rule); ``expires_at`` is a reading of the backend's clock, or None for a token that never
    expires (root tokens, tokens whose TTL we could not look up).
    """

    token: str = field(repr=False)
    ttl: float
    expires_at: float | None
    renewable: bool

    @classmethod
    def granted(cls, token: str, *, ttl: float, renewable: bool, now: float) -> Lease:
        """A lease for a token Vault just issued or looked up, with ``ttl`` seconds left."""
        if ttl <= 0:
            return cls(token=token, ttl=0, expires_at=None, renewable=False)
        return cls(token=token, ttl=ttl, expires_at=now + ttl, renewable=renewable)

    def renewed(self, *, lease_duration: float, renewable: bool, now: float) -> Lease:
        """The lease after a successful renew-self.

        A renewal that no longer buys a third of the original TTL (the token is close to its max
        TTL) makes the lease non-renewable, so that login methods log in again and static tokens
        stop asking.
        """
        capped = lease_duration < self.ttl / 3
        return Lease(
            token=self.token,
            ttl=self.ttl,
            expires_at=now + lease_duration if lease_duration > 0 else None,
            renewable=renewable and not capped,
        )


def next_step(lease: Lease | None, *, now: float, can_login: bool) -> Step:
    """Decide, before a read, whether the token is good as is, needs renewing, or a new login."""
    if lease is None:
        return Step.LOGIN
    if lease.expires_at is None:
        return Step.USE
    remaining = lease.expires_at - now
    if remaining >= lease.ttl / 3:
        return Step.USE
    if lease.renewable:
        return Step.RENEW
    return Step.LOGIN if can_login else Step.USE


def read_secret_file(path: str, *, backend: str, key: str) -> str:
    """The stripped content of a login-material file; AccessDenied naming ``key`` if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise base.AccessDenied(
            f"vault backend {backend!r}: auth.{key} {path} is not UTF-8 text"
        ) from None
    except OSError as exc:
        raise base.AccessDenied(
            f"vault backend {backend!r}: cannot read auth.{key} {path}: {exc.strerror}"
        ) from exc
    if not text:
        raise base.AccessDenied(f"vault backend {backend!r}: auth.{key} {path} is empty")
    return text


def static_token(token_file: str | None, *, backend: str) -> str:
    """The token for method ``token``: ``tokenFile`` if set, else ``$VAULT_TOKEN``."""
    if token_file:
        return read_secret_file(token_file, backend=backend, key="tokenFile")
    token = os.environ.get("VAULT_TOKEN", "").strip()
    if not token:
        raise base.AccessDenied(
            f"vault backend {backend!r}: no token (set auth.tokenFile or $VAULT_TOKEN)"
        )
    return token
