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
import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
import requests.auth
import urllib3.exceptions

import syncer
from syncer.core import dockerconfig
from syncer.credentials import challenges, verifyhttp

log = logging.getLogger(__name__)

Result = Literal["ok", "rejected", "unreachable"]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
_DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


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
REQUEST_TIMEOUT = 10.0  # seconds, whole request: connect, headers and the part of the body read
CHECK_DEADLINE = 20.0  # seconds, whole check (at most three requests)


@dataclass(slots=True)
class _Call:
    """The state of one check: its session, its watchdog and when its time is up."""

    http: requests.Session
    watchdog: verifyhttp.Watchdog
    options: Options
    timeout: float
    ends: float
    clock: Callable[[], float]

    def budget(self) -> float:
        """Seconds the next request may take: the request timeout, or what is left of the
        check's deadline when that is less."""
        left = self.ends - self.clock()
        if left <= 0:
            raise _Stop(Outcome("unreachable", "no complete answer within the check's deadline"))
        return min(self.timeout, left)


def check(
    registry_key: str,
    entry: Mapping[str, str],
    *,
    options: Options,
    timeout: float = REQUEST_TIMEOUT,
    deadline: float = CHECK_DEADLINE,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Log in to the registry of `registry_key` with the credential of `entry` (one `auths` entry).

    `timeout` bounds each request as a whole (connect, answer, body read), `deadline` the whole
    check; a check that runs out of time is ``unreachable``. At most 64 KiB of any answer's body
    is read. Never raises for anything the network or the registry does.
    """
    watchdog = verifyhttp.Watchdog()
    http = verifyhttp.session(watchdog)
    where = "the registry"
    limit = min(timeout, deadline)
    try:
        target = _target(registry_key, options)
        where = target.host
        credential = _credential(entry)
        if options.insecure_skip_verify:
            log.warning("registry login check without TLS verification (insecureSkipVerify)",
                        extra={"registry": target.host})
        call = _Call(http=http, watchdog=watchdog, options=options, timeout=timeout,
                     ends=clock() + deadline, clock=clock)
        outcome = _login(call, target, credential)
    except _Stop as stop:
        outcome = stop.outcome
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        outcome = _failure(exc, where=where, limit=limit, timed_out=watchdog.fired)
    finally:
        http.close()
        watchdog.close()
    if watchdog.fired and outcome.result != "unreachable":  # time ran out mid-flow
        outcome = Outcome("unreachable", f"{where}: no complete answer within {limit:g}s")
    log.debug("registry login check: %s", outcome.result,
              extra={"registry": registry_key, "result": outcome.result})
    return outcome


def _failure(exc: BaseException, *, where: str, limit: float, timed_out: bool) -> Outcome:
    if timed_out or isinstance(exc, requests.exceptions.Timeout):
        return Outcome("unreachable", f"{where}: no complete answer within {limit:g}s")
    if isinstance(exc, requests.exceptions.SSLError):
        return Outcome("unreachable", f"{where}: {_tls_detail(exc)}")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Outcome("unreachable", f"{where}: connection failed ({type(exc).__name__})")
    return Outcome("unreachable", f"{where}: request failed ({type(exc).__name__})")


# --------------------------------------------------------------------------- the flow


def _login(call: _Call, target: _Target, credential: _Credential) -> Outcome:
    url = f"{target.base}/v2/"
    with _get(call, url, auth=None) as first:  # the body is never read: only status, header
        status = first.status_code
        found = challenges.parse_challenges(first.headers.get("WWW-Authenticate", ""))
    if status == 200:
        return Outcome("ok", f"{target.host} allows anonymous access: nothing to verify")
    if status != 401:
        raise _unexpected(status, what=f"{target.host} /v2/", api=True)
    by_scheme = {c.scheme: c for c in found}
    if "bearer" in by_scheme:  # docker tries token auth first, as do we
        return _bearer(call, target, credential, by_scheme["bearer"])
    if "basic" in by_scheme:
        with _get(call, url, auth=credential.basic_header()) as second:
            status = second.status_code
        if status == 200:
            return Outcome("ok", f"{target.host} accepted the credential (Basic)")
        if status in (401, 403):
            return Outcome("rejected", f"{target.host} refused the credential (Basic, {status})")
        raise _unexpected(status, what=f"{target.host} /v2/ with Basic auth")
    raise _unreachable(f"{target.host} answered 401 without a Basic or Bearer challenge")


def _bearer(call: _Call, target: _Target, credential: _Credential,
            challenge: challenges.Challenge) -> Outcome:
    realm = challenge.params.get("realm", "")
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _unreachable(f"{target.host} named a token realm that is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise _unreachable(f"{target.host} named a token realm with user info; refused")
    realm_host = parts.netloc
    if parts.scheme == "http" and not call.options.plain_http:
        raise _unreachable(
            f"{target.host} named a token realm over plain http ({realm_host}); refused: the "
            "credential would travel in clear text (set plainHttp to allow)")
    params: dict[str, str] = {"account": credential.username}
    for name in ("service", "scope"):
        if challenge.params.get(name):
            params[name] = challenge.params[name]
    with _get(call, realm, auth=credential.basic_header(), params=params) as answer:
        status = answer.status_code
        if status in (401, 403):
            return Outcome("rejected", f"token realm {realm_host} refused the credential "
                                       f"({status})")
        if status != 200:
            raise _unexpected(status, what=f"token realm {realm_host}")
        try:
            body = verifyhttp.read_limited(answer.iter_content(16384))
        except verifyhttp.TooLong:
            raise _unreachable(f"token realm {realm_host} answered more than "
                               f"{verifyhttp.MAX_ANSWER} bytes") from None
    if not _has_token(body):
        raise _unreachable(f"token realm {realm_host} answered 200 without a token")
    return Outcome("ok", f"token realm {realm_host} issued a token for {target.host} (Bearer)")


@contextlib.contextmanager
def _get(call: _Call, url: str, *, auth: str | None,
         params: Mapping[str, str] | None = None) -> Iterator[requests.Response]:
    """One GET under a total deadline; the answer's body is streamed, never read whole."""
    options = call.options
    verify: bool | str = True
    if options.insecure_skip_verify:
        verify = False
    elif options.ca_cert is not None:
        if not os.access(options.ca_cert, os.R_OK):
            raise _unreachable("the caCert file cannot be read")
        verify = str(options.ca_cert)
    seconds = call.budget()
    with call.watchdog.deadline(seconds), warnings.catch_warnings():
        if not verify:  # already logged once per check as our own warning
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        answer = call.http.get(url, params=params, auth=_HeaderAuth(auth),
                               timeout=(seconds, seconds), verify=verify,
                               allow_redirects=False, stream=True,
                               headers={"Accept": "application/json", "User-Agent": USER_AGENT})
        with answer:
            yield answer


def _unexpected(status: int, *, what: str, api: bool = False) -> _Stop:
    if 300 <= status < 400:
        return _unreachable(f"{what} answered a redirect ({status}); not followed")
    if status == 404 and api:
        return _unreachable(f"{what} answered 404: no registry API v2 there")
    if status >= 500:
        return _unreachable(f"{what} answered {status} (server error)")
    return _unreachable(f"{what} answered an unexpected {status}")


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
    if isinstance(auth, str) and auth.strip():
        pair = dockerconfig.split_auth(auth)
        if pair is None:
            raise _rejected("the entry's 'auth' is not base64 of 'username:password'")
        return _Credential(username=pair[0], password=pair[1])
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user and secret:
        return _Credential(username=user, password=secret)
    raise _rejected("the entry has no 'auth' or 'username' and 'password' to present")
