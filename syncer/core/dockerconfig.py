"""Backend payloads to registry auths, registry-key normalization, ``.dockerconfigjson`` rendering.

Pure: no I/O. Every error is a :class:`PayloadError` whose message names the field at fault and
never contains a value; every object holding credential material redacts itself in ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from syncer.core import frozen

DOCKER_HUB = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# host[:port][/path] with an optional http(s) scheme. A host label may hold `*` globs, as the
# kubelet matches each label with filepath.Match (`*.example.com`, `*.*.example.com`); a host made
# of globs only would match nearly every image and is refused.
_LABEL = r"[A-Za-z0-9*](?:[-A-Za-z0-9*]*[A-Za-z0-9*])?"
_SEGMENT = r"[A-Za-z0-9._~-]+"
# Portable (no lookaround, no named groups: the ECMA-262 and RE2 subset), as it also goes into
# config/schema.json; a host of globs only is refused in code.
REGISTRY_PATTERN = (
    r"^(?:[Hh][Tt][Tt][Pp][Ss]?://)?"
    rf"({_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(:[0-9]{{1,5}})?"
    rf"(/+(?:{_SEGMENT}(?:/{_SEGMENT})*)?/*)?$"
)
REGISTRY_HINT = "not a valid registry: [https://]host[:port][/path], host may hold * globs"
_REGISTRY = re.compile(REGISTRY_PATTERN)
KNOWN_FIELDS = frozenset(
    {"auth", "username", "password", "email", "identitytoken", "registrytoken", "serveraddress"}
)
_TOKEN_FIELDS = ("identitytoken", "registrytoken")


class PayloadError(ValueError):
    """A backend secret is not a usable registry credential; names fields, never values."""


@dataclass(frozen=True, slots=True)
class FieldNames:
    """Which payload keys hold the username, password and email of basic credentials."""

    username: str = "username"
    password: str = "password"  # noqa: S105 - a key name, not a secret
    email: str = "email"


class SecretMap(frozen.FrozenMap):
    """An immutable mapping that holds credential material: ``repr`` shows its keys only."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SecretMap(keys={sorted(self._data)!r}, values=<redacted>)"

    __str__ = __repr__

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, _freeze(v)) for k, v in self._data.items())))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


# Registry key (normalized) -> Docker config entry ({"auth": …, "username": …, …}).
Auths: TypeAlias = Mapping[str, Mapping[str, str]]


def normalize_registry(registry: str) -> str:
    """The key a registry has in ``auths``, as the kubelet will match it.

    The kubelet (``pkg/credentialprovider/keyring.go``) drops an ``http(s)://`` scheme, treats a
    leading ``/v1/`` or ``/v2/`` path as the host itself, and matches host labels as globs; its
    Docker Hub credentials live under ``index.docker.io``. So: every spelling of Docker Hub
    (``docker.io``, ``index.docker.io``, ``registry-1.docker.io``, with or without ``:443``, scheme
    or path) becomes ``https://index.docker.io/v1/``; others become ``host[:port][/path]`` with the
    host lower-cased, no scheme, no trailing slash, and a bare ``/v1`` or ``/v2`` path dropped
    (``https://harbor.example.com/v2/`` -> ``harbor.example.com``). Surrounding white space is
    ignored (payloads); the config's ``registry`` refuses it before calling this.
    """
    if not isinstance(registry, str):
        raise PayloadError("registry must be a string")
    text = registry.strip()
    if not text:
        raise PayloadError("registry is empty")
    match = _REGISTRY.match(text)
    if match is None:
        raise PayloadError("registry is not a valid [https://]host[:port][/path]")
    host, port = match[1].lower(), match[2] or ""
    path = (match[3] or "").strip("/")
    if not host.strip("*."):
        raise PayloadError("registry is not a valid [https://]host[:port][/path]")
    if host in _DOCKER_HUB_HOSTS and port in ("", ":443"):
        return DOCKER_HUB
    if path in ("v1", "v2"):
        path = ""
    return f"{host}{port}/{path}" if path else f"{host}{port}"


def parse_payload(data: Mapping[str, object], *, fields: FieldNames, registry: str | None) -> Auths:
    """The registry auths a backend secret holds (docs/configuration.md, detected in this order).

    1. a Docker config: key ``.dockerconfigjson`` (JSON string or object) or key ``auths``;
    2. basic credentials under the ``fields`` names; the registry is ``registry`` (from the
       config, wins) or the payload's ``registry``/``server``.
    """
    if not isinstance(data, Mapping):
        raise PayloadError("secret is not an object")
    if ".dockerconfigjson" in data:
        return _auths_of_docker_config(_docker_config_document(data[".dockerconfigjson"]))
    if "auths" in data:
        return _auths_of_docker_config(data)
    return _auths_of_basic(data, fields=fields, registry=registry)


def parse_json_document(text: str | bytes) -> Mapping[str, Any]:
    """A JSON object from a string or UTF-8 bytes (AWS ``SecretString``/``SecretBinary``)."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("not valid UTF-8") from None
    document = _loads(text, what="secret")
    if not isinstance(document, dict):
        raise PayloadError("not a JSON object")
    return document


def merge(parts: Sequence[tuple[str, Auths]]) -> tuple[Auths, tuple[tuple[str, str], ...]]:
    """Merge several credentials' auths in order; the first to claim a registry keeps it.

    Returns the merged auths and the ``(credential, registry)`` pairs that lost to an earlier
    credential, so the caller can warn about them.
    """
    merged: dict[str, Mapping[str, str]] = {}
    shadowed: list[tuple[str, str]] = []
    for credential, auths in parts:
        for key, entry in auths.items():
            if key in merged:
                shadowed.append((credential, key))
            else:
                merged[key] = entry
    return SecretMap(merged), tuple(shadowed)


def render(auths: Auths) -> bytes:
    """The ``.dockerconfigjson`` bytes: ``{"auths": …}``, sorted keys, compact, UTF-8.

    Identical input gives byte-identical output, so an unchanged credential causes no write.
    """
    document = {"auths": {key: dict(entry) for key, entry in auths.items()}}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _loads(text: str, *, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # json's messages and the exception's `doc` carry the input: drop the cause on purpose.
        raise PayloadError(f"{what} is not valid JSON") from None


def _docker_config_document(value: object) -> Mapping[str, Any]:
    if isinstance(value, str):
        value = _loads(value, what="'.dockerconfigjson'")
    if not isinstance(value, Mapping):
        raise PayloadError("'.dockerconfigjson' must be a JSON object")
    if "auths" not in value:
        raise PayloadError("'.dockerconfigjson' has no 'auths' object")
    return value


def _auths_of_docker_config(document: Mapping[str, Any]) -> Auths:
    raw = document["auths"]
    if not isinstance(raw, Mapping):
        raise PayloadError("'auths' must be an object")
    if not raw:
        raise PayloadError("'auths' is empty")
    result: dict[str, Mapping[str, str]] = {}
    for raw_key, raw_entry in raw.items():
        try:
            key = normalize_registry(raw_key)
        except PayloadError:
            # An unparsable key is not known to be a registry name: do not echo it.
            raise PayloadError(
                "'auths' has a key that is not a registry ([https://]host[:port][/path])"
            ) from None
        where = f"'auths' entry {key!r}"
        if key in result:
            raise PayloadError(f"{where}: registry appears twice after normalization")
        result[key] = SecretMap(_docker_entry(raw_entry, where=where))
    return SecretMap(result)


def _docker_entry(raw: object, *, where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise PayloadError(f"{where} must be an object")
    entry: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(value, str) or not isinstance(name, str):
            # An unknown key may be a value pasted in the wrong place: name known keys only.
            shown = f"field {name!r}" if name in KNOWN_FIELDS else "a field that is not a known one"
            raise PayloadError(f"{where}: {shown} must be a string")
        entry[name] = value
    if "auth" in entry:
        _check_auth(entry["auth"], where=where)
    elif "username" in entry and "password" in entry:
        entry["auth"] = _basic_auth(
            _non_empty(entry, "username", where=f"{where}: "),
            _non_empty(entry, "password", where=f"{where}: "),
            username_field="username",
            where=f"{where}: ",
        )
    elif any(entry.get(name) for name in _TOKEN_FIELDS):
        raise PayloadError(
            f"{where}: the kubelet does not use identitytoken/registrytoken; store username and "
            "password or auth"
        )
    else:
        raise PayloadError(
            f"{where} has no credentials (needs 'auth', or 'username' and 'password')"
        )
    return entry


def _check_auth(auth: str, *, where: str) -> None:
    """``auth`` must decode as the kubelet decodes it: base64 (padded or not) of ``user:pass``."""
    if not auth.strip():
        raise PayloadError(f"{where}: field 'auth' is empty")
    if split_auth(auth) is None:
        raise PayloadError(f"{where}: field 'auth' is not base64 of 'username:password'")


def split_auth(auth: str) -> tuple[str, str] | None:
    """The user and password of an ``auth`` field, read as the kubelet reads it (surrounding
    whitespace such as a trailing newline ignored, base64 padded or not); None when it is not
    base64 of ``username:password``. Every reader of ``auth`` uses this one rule."""
    text = auth.strip()
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if text and colon else None


def _auths_of_basic(
    data: Mapping[str, object], *, fields: FieldNames, registry: str | None
) -> Auths:
    missing = [name for name in (fields.username, fields.password) if name not in data]
    if len(missing) == 2:
        raise PayloadError(
            "no credentials found: expected '.dockerconfigjson', 'auths', or fields "
            f"{fields.username!r} and {fields.password!r}"
        )
    if missing:
        raise PayloadError(f"field {missing[0]!r} is missing")
    username = _non_empty(data, fields.username)
    password = _non_empty(data, fields.password)
    entry = {
        "username": username,
        "password": password,
        "auth": _basic_auth(username, password, username_field=fields.username),
    }
    if data.get(fields.email) is not None:
        email = data[fields.email]
        if not isinstance(email, str):
            raise PayloadError(f"field {fields.email!r} must be a string")
        if email.strip():
            entry["email"] = email
    key = normalize_registry(registry) if registry is not None else _payload_registry(data)
    return SecretMap({key: SecretMap(entry)})


def _payload_registry(data: Mapping[str, object]) -> str:
    for name in ("registry", "server"):
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise PayloadError(f"field {name!r} must be a string")
        try:
            return normalize_registry(value)
        except PayloadError as exc:
            raise PayloadError(f"field {name!r}: {exc}") from None
    raise PayloadError(
        "no registry: set 'registry' in the config or 'registry'/'server' in the secret"
    )


def _non_empty(data: Mapping[str, object], name: str, *, where: str = "") -> str:
    value = data[name]
    if not isinstance(value, str):
        raise PayloadError(f"{where}field {name!r} must be a string")
    if not value.strip():
        raise PayloadError(f"{where}field {name!r} is empty")
    return value


def _basic_auth(username: str, password: str, *, username_field: str, where: str = "") -> str:
    if ":" in username:
        # Docker splits `auth` at the first colon: such a username could never be read back.
        raise PayloadError(f"{where}field {username_field!r} must not contain ':'")
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
