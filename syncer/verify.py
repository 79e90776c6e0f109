"""The login check of `docker login`, asked of a registry before a new credential is published.

One call, `check(registry_key, entry, options=…)`, answers whether the registry accepts the
credential of one `auths` entry: ``ok``, ``rejected`` (a definite 401/403 to the credential) or
``unreachable`` (anything that is not a definite answer). The flow is the Registry HTTP API v2
login: ``GET /v2/`` without credentials; on a ``Basic`` challenge the same request with Basic
auth; on a ``Bearer`` challenge a token request to the challenge's realm with Basic auth and the
``service``, ``scope`` and ``account`` parameters.

Security rules, and why:

- Credentials go to the registry host and to the token realm that registry names, nowhere else.
  The realm may be another host (Docker Hub's is ``auth.docker.io``): that is how token auth
  works, and the registry we chose to trust is the one naming it.
- A realm over plain ``http`` is refused unless ``plain_http`` is set: the Basic credential would
  cross the network in clear text to a host we only learnt from a response. It is reported as
  ``unreachable`` (publish with a warning), not ``rejected``: nobody said the credential is bad,
  we declined to ask.
- Redirects are never followed (``allow_redirects=False`` on every request) — a 3xx anywhere is
  ``unreachable``: following it would hand the credential to a host the user never named.
- TLS is verified by default; ``ca_cert`` adds a CA, ``insecure_skip_verify`` turns verification
  off (logged as a warning).
- No detail, log line, exception or repr carries a credential: details are fixed texts with host
  names and status codes only; library exceptions are reported by their class name.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
import requests.auth
import urllib3.exceptions

import syncer

log = logging.getLogger(__name__)

Result = Literal["ok", "rejected", "unreachable"]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_MAX_TOKEN_ANSWER = 1024 * 1024  # a token answer is a few KiB; do not buffer an endless body


@dataclass(frozen=True, slots=True)
class Options:
    """How to reach a registry (the `verify` block of a credential).

    `ca_cert`: a PEM bundle of the CAs that verify the registry and its realm (used instead of
    the system bundle). `insecure_skip_verify`: do not verify TLS at all. `plain_http`: speak
    http:// to the registry and accept a token realm over http://.
    """

    ca_cert: Path | None = None
    insecure_skip_verify: bool = False
    plain_http: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer of one check; `detail` says why, naming hosts and statuses, never a value."""

    result: Result
    detail: str

    @property
    def ok(self) -> bool:
        return self.result == "ok"


@dataclass(frozen=True, slots=True)
class _Credential:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class _Target:
    base: str  # scheme://host[:port]
    host: str  # host[:port], for details


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a `WWW-Authenticate` header: scheme and params, names in lower case."""

    scheme: str
    params: Mapping[str, str]


class _Stop(Exception):
    """Ends a check early with its outcome (never leaves this module)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class _HeaderAuth(requests.auth.AuthBase):
    """Sets exactly our Authorization header (or none), so requests never adds .netrc auth."""

    def __init__(self, value: str | None) -> None:
        self._value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._value is not None:
            r.headers["Authorization"] = self._value
        return r

    def __repr__(self) -> str:
        return "<authorization redacted>"


def _rejected(detail: str) -> _Stop:
    return _Stop(Outcome("rejected", detail))


def _unreachable(detail: str) -> _Stop:
    return _Stop(Outcome("unreachable", detail))


USER_AGENT = f"pullsecret-syncer/{syncer.__version__} (registry login check)"


def check(
    registry_key: str,
    entry: Mapping[str, str],
    *,
    options: Options,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> Outcome:
    """Log in to the registry of `registry_key` with the credential of `entry` (one `auths` entry).

    `timeout` bounds each request (connect and read). `session` lets a caller reuse connections;
    it is never closed here. Never raises for anything the network or the registry does.
    """
    own = session is None
    http = session if session is not None else requests.Session()
    where = "the registry"
    try:
        target = _target(registry_key, options)
        where = target.host
        credential = _credential(entry)
        if options.insecure_skip_verify:
            log.warning("registry login check without TLS verification (insecureSkipVerify)",
                        extra={"registry": target.host})
        outcome = _login(http, target, credential, options=options, timeout=timeout)
    except _Stop as stop:
        outcome = stop.outcome
    except requests.exceptions.SSLError as exc:
        outcome = Outcome("unreachable", f"{where}: {_tls_detail(exc)}")
    except requests.exceptions.Timeout:
        outcome = Outcome("unreachable", f"{where}: no answer within {timeout:g}s")
    except requests.exceptions.ConnectionError as exc:
        outcome = Outcome("unreachable", f"{where}: connection failed ({type(exc).__name__})")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        outcome = Outcome("unreachable", f"{where}: request failed ({type(exc).__name__})")
    finally:
        if own:
            http.close()
    log.debug("registry login check: %s", outcome.result,
              extra={"registry": registry_key, "result": outcome.result})
    return outcome


# --------------------------------------------------------------------------- the flow


def _login(http: requests.Session, target: _Target, credential: _Credential, *,
           options: Options, timeout: float) -> Outcome:
    url = f"{target.base}/v2/"
    with _get(http, url, auth=None, options=options, timeout=timeout) as first:
        status = first.status_code
        challenges = parse_challenges(first.headers.get("WWW-Authenticate", ""))
    if status == 200:
        return Outcome("ok", f"{target.host} allows anonymous access: nothing to verify")
    if status != 401:
        raise _unexpected(status, what=f"{target.host} /v2/", api=True)
    by_scheme = {c.scheme: c for c in challenges}
    if "bearer" in by_scheme:  # docker tries token auth first, as do we
        return _bearer(http, target, credential, by_scheme["bearer"], options=options,
                       timeout=timeout)
    if "basic" in by_scheme:
        header = credential.basic_header()
        with _get(http, url, auth=header, options=options, timeout=timeout) as second:
            status = second.status_code
        if status == 200:
            return Outcome("ok", f"{target.host} accepted the credential (Basic)")
        if status in (401, 403):
            return Outcome("rejected", f"{target.host} refused the credential (Basic, {status})")
        raise _unexpected(status, what=f"{target.host} /v2/ with Basic auth")
    raise _unreachable(f"{target.host} answered 401 without a Basic or Bearer challenge")


def _bearer(http: requests.Session, target: _Target, credential: _Credential,
            challenge: Challenge, *, options: Options, timeout: float) -> Outcome:
    realm = challenge.params.get("realm", "")
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _unreachable(f"{target.host} named a token realm that is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise _unreachable(f"{target.host} named a token realm with user info; refused")
    realm_host = parts.netloc
    if parts.scheme == "http" and not options.plain_http:
        raise _unreachable(
            f"{target.host} named a token realm over plain http ({realm_host}); refused: the "
            "credential would travel in clear text (set plainHttp to allow)")
    params: dict[str, str] = {"account": credential.username}
    for name in ("service", "scope"):
        if challenge.params.get(name):
            params[name] = challenge.params[name]
    header = credential.basic_header()
    with _get(http, realm, auth=header, options=options, timeout=timeout, params=params,
              stream=True) as answer:
        status = answer.status_code
        if status in (401, 403):
            return Outcome("rejected", f"token realm {realm_host} refused the credential "
                                       f"({status})")
        if status != 200:
            raise _unexpected(status, what=f"token realm {realm_host}")
        body = _read_limited(answer.iter_content(65536), what=f"token realm {realm_host}")
    if not _has_token(body):
        raise _unreachable(f"token realm {realm_host} answered 200 without a token")
    return Outcome("ok", f"token realm {realm_host} issued a token for {target.host} (Bearer)")


def _get(http: requests.Session, url: str, *, auth: str | None, options: Options,
         timeout: float, params: Mapping[str, str] | None = None,
         stream: bool = False) -> requests.Response:
    verify: bool | str = True
    if options.insecure_skip_verify:
        verify = False
    elif options.ca_cert is not None:
        if not os.access(options.ca_cert, os.R_OK):
            raise _unreachable("the caCert file cannot be read")
        verify = str(options.ca_cert)
    with warnings.catch_warnings():
        if not verify:  # already logged once per check as our own warning
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        return http.get(url, params=params, auth=_HeaderAuth(auth), timeout=(timeout, timeout),
                        verify=verify, allow_redirects=False, stream=stream,
                        headers={"Accept": "application/json", "User-Agent": USER_AGENT})


def _unexpected(status: int, *, what: str, api: bool = False) -> _Stop:
    if 300 <= status < 400:
        return _unreachable(f"{what} answered a redirect ({status}); not followed")
    if status == 404 and api:
        return _unreachable(f"{what} answered 404: no registry API v2 there")
    if status >= 500:
        return _unreachable(f"{what} answered {status} (server error)")
    return _unreachable(f"{what} answered an unexpected {status}")


def _read_limited(chunks: Iterator[bytes], *, what: str) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > _MAX_TOKEN_ANSWER:
            raise _unreachable(f"{what} answered more than {_MAX_TOKEN_ANSWER} bytes")
    return bytes(body)


def _has_token(body: bytes) -> bool:
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    token = doc.get("token") or doc.get("access_token")
    return isinstance(token, str) and bool(token)


def _tls_detail(exc: requests.exceptions.SSLError) -> str:
    # str(exc) names the URL and the OpenSSL reason, never a header: safe to classify, but
    # the detail stays a fixed text.
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "TLS verification failed: the registry's certificate is not trusted (caCert?)"
    return "TLS handshake failed"


# --------------------------------------------------------------------------- inputs


def api_base(registry_key: str, *, options: Options) -> str:
    """Where the check of `registry_key` goes: ``https://host[:port]`` (``http`` with
    `plain_http`); Docker Hub's key at registry-1.docker.io. ValueError (a message without the
    key) when the key names no single host, e.g. a wildcard."""
    key = registry_key.strip() if isinstance(registry_key, str) else ""
    rest = key.split("://", 1)[1] if "://" in key else key
    hostport = rest.split("/", 1)[0].lower()
    if "*" in hostport:
        raise ValueError("a wildcard registry key names no single host: cannot be checked")
    try:
        parts = urlsplit(f"//{hostport}")
        host, _port = parts.hostname, parts.port  # .port raises ValueError when invalid
    except ValueError:
        host = None
    if not host or "@" in hostport:
        raise ValueError("the registry key has no valid host[:port] to check")
    if key == DOCKER_HUB_KEY or host in _DOCKER_HUB_HOSTS:
        hostport = DOCKER_HUB_API_HOST
    return f"{'http' if options.plain_http else 'https'}://{hostport}"


def _target(registry_key: str, options: Options) -> _Target:
    try:
        base = api_base(registry_key, options=options)
    except ValueError as exc:
        raise _unreachable(str(exc)) from None
    return _Target(base=base, host=base.split("://", 1)[1])


def _credential(entry: Mapping[str, str]) -> _Credential:
    """The user and password a client presents: from `auth` (as the kubelet and skopeo read it),
    else from `username` + `password`."""
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise _rejected("the entry's 'auth' is not base64 of 'username:password'") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise _rejected("the entry's 'auth' is not base64 of 'username:password'")
        return _Credential(username=username, password=password)
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user and secret:
        return _Credential(username=user, password=secret)
    raise _rejected("the entry has no 'auth' or 'username' and 'password' to present")


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a `WWW-Authenticate` value (RFC 7235; several may be comma-joined)."""
    found: list[tuple[str, dict[str, str]]] = []
    pos, n = 0, len(header)
    current: dict[str, str] | None = None
    while pos < n:
        while pos < n and header[pos] in " \t,":
            pos += 1
        start = pos
        while pos < n and header[pos] not in " \t,=\"":
            pos += 1
        word = header[start:pos]
        if not word:
            pos += 1
            continue
        probe = pos
        while probe < n and header[probe] in " \t":
            probe += 1
        if probe < n and header[probe] == "=" and current is not None:
            pos = probe + 1
            while pos < n and header[pos] in " \t":
                pos += 1
            value, pos = _param_value(header, pos)
            current[word.lower()] = value
            continue
        if probe < n and header[probe] == "=":  # token68 without a scheme: skip it
            pos = probe + 1
            continue
        current = {}
        found.append((word.lower(), current))
    return [Challenge(scheme=scheme, params=dict(params)) for scheme, params in found]


def _param_value(header: str, pos: int) -> tuple[str, int]:
    n = len(header)
    if pos < n and header[pos] == '"':
        pos += 1
        out: list[str] = []
        while pos < n and header[pos] != '"':
            if header[pos] == "\\" and pos + 1 < n:
                pos += 1
            out.append(header[pos])
            pos += 1
        return "".join(out), pos + 1
    start = pos
    while pos < n and header[pos] not in " \t,":
        pos += 1
    return header[start:pos], pos
