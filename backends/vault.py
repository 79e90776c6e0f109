"""Vault / OpenBao backend: reads KV v1 and v2 secrets; token, AppRole or Kubernetes auth.

The only module that imports ``hvac``. One read is one HTTP GET on the happy path; login and
renewal happen lazily before a read (see :mod:`backends.vault_auth` for when). No retries here
besides one re-login and re-read after a 403 with a login method: backoff is the caller's job.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import hvac
import hvac.exceptions
import pydantic
import requests
from pydantic_core import PydanticCustomError

from backends import base, vault_auth, vault_http

log = logging.getLogger(__name__)

TIMEOUT = (5.0, 10.0)  # seconds: connect, read


class TLSSettings(base.StrictBlock):
    ca_cert: str | None = pydantic.Field(
        default=None, description="PEM file of the CA that signed Vault's cert."
    )
    insecure_skip_verify: bool = pydantic.Field(
        default=False, description="Skip TLS verification (warned)."
    )


class VaultSettings(base.StrictBlock):
    """The ``backends.<name>`` block of ``type: vault`` (without ``type``)."""

    address: str | None = pydantic.Field(
        default=None, description="Vault URL (default: $VAULT_ADDR)."
    )
    namespace: str | None = pydantic.Field(default=None, description="Vault Enterprise namespace.")
    tls: TLSSettings = pydantic.Field(default_factory=lambda: TLSSettings())
    auth: vault_auth.AuthSettings = pydantic.Field(
        default_factory=lambda: vault_auth.AuthSettings()
    )


def _kv_version(value: object) -> int:
    # A strict Literal[1, 2] still takes True (== 1) and 2.0 (== 2).
    if type(value) is not int or value not in (1, 2):
        raise PydanticCustomError("config_kv_version", "expected 1 or 2")
    return value


KvVersion = Annotated[
    int,
    pydantic.PlainValidator(_kv_version),
    pydantic.WithJsonSchema({"type": "integer", "enum": [1, 2]}),
]


class VaultRef(base.StrictBlock):
    """The vault-specific keys of a ``credentials.<name>`` block."""

    mount: str = pydantic.Field(default="secret", min_length=1, description="KV mount path.")
    path: str = pydantic.Field(min_length=1, description="Secret path inside the mount.")
    kv_version: KvVersion = pydantic.Field(default=2, description="KV engine version of the mount.")


# The one place where library errors become ours (statuses as in hvac VaultError.from_status).
_STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (hvac.exceptions.InvalidRequest, 400),
    (hvac.exceptions.Unauthorized, 401),
    (hvac.exceptions.Forbidden, 403),
    (hvac.exceptions.InvalidPath, 404),
    (hvac.exceptions.RateLimitExceeded, 429),
    (hvac.exceptions.InternalServerError, 500),
    (hvac.exceptions.VaultNotInitialized, 501),
    (hvac.exceptions.BadGateway, 502),
    (hvac.exceptions.VaultDown, 503),
)


def _wrap(exc: Exception, what: str, *, login: bool = False) -> base.BackendError:
    """Our error for a library exception raised doing ``what``: no values, no library text."""
    if isinstance(exc, vault_http.OffOriginRedirect):
        return base.Unavailable(f"{what}: Vault redirected to another origin ({exc.host}); "
                                "not followed, nothing sent there")
    if isinstance(exc, hvac.exceptions.VaultError):
        status = next((code for cls, code in _STATUS_OF if isinstance(exc, cls)), None)
        shown = f"HTTP {status}" if status else "unexpected HTTP status"
        if status in (401, 403) or (login and status == 400):
            return base.AccessDenied(f"{what}: access denied ({shown})")
        if status == 404:
            return base.NotFound(f"{what}: not found ({shown})")
        if status == 400:
            return base.BackendError(f"{what}: request rejected ({shown})")
        if status == 503:
            return base.Unavailable(f"{what}: Vault unavailable or sealed ({shown})")
        return base.Unavailable(f"{what}: Vault error ({shown})")
    if isinstance(exc, requests.exceptions.SSLError):
        return base.Unavailable(f"{what}: TLS handshake or certificate verification failed")
    if isinstance(exc, requests.exceptions.Timeout):
        return base.Unavailable(f"{what}: timed out")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return base.Unavailable(f"{what}: cannot connect")
    if isinstance(exc, requests.exceptions.RequestException | OSError):
        return base.Unavailable(f"{what}: request failed ({type(exc).__name__})")
    return base.Unavailable(f"{what}: unexpected response ({type(exc).__name__})")


class VaultBackend:
    """A connection to one Vault server; thread-safe. Create with :func:`create`."""

    def __init__(
        self,
        name: str,
        settings: VaultSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._settings = settings
        self._auth = settings.auth
        self._clock = clock
        address = settings.address or os.environ.get("VAULT_ADDR")
        if not address:
            raise base.Misconfigured(
                f"vault backend {name!r}: no address (set address or $VAULT_ADDR)"
            )
        if settings.auth.method == "token" and not settings.auth.token_file:
            if not os.environ.get("VAULT_TOKEN"):
                raise base.Misconfigured(
                    f"vault backend {name!r}: method token needs auth.tokenFile or $VAULT_TOKEN"
                )
        self.address = address.rstrip("/")
        if _cleartext(self.address):
            log.warning(
                "vault address uses plain http to a host that is not loopback: tokens would "
                "travel in clear text (use https)",
                extra={"backend": name},
            )
        verify: bool | str = True
        if settings.tls.insecure_skip_verify:
            log.warning(
                "TLS verification disabled for vault backend (insecureSkipVerify)",
                extra={"backend": name},
            )
            verify = False
        elif settings.tls.ca_cert:
            if not os.path.isfile(settings.tls.ca_cert):
                raise base.Misconfigured(
                    f"vault backend {name!r}: tls.caCert {settings.tls.ca_cert} is not a file"
                )
            verify = settings.tls.ca_cert
        # requests' own default (no retries), but no redirect leaves the origin
        self._session = vault_http.SameOriginSession()
        self._client = hvac.Client(
            url=self.address,
            token="",  # never hvac's own fallback to $VAULT_TOKEN / ~/.vault-token
            verify=verify,
            timeout=TIMEOUT,
            namespace=settings.namespace or None,
            session=self._session,
        )
        self._lock = threading.Lock()
        self._lease: vault_auth.Lease | None = None

    def __repr__(self) -> str:
        return f"VaultBackend({self.name!r}, address={self.address!r}, auth={self._auth.method!r})"

    # -- Backend protocol -------------------------------------------------------------------

    def fetch(self, ref: base.CredentialRef) -> base.Payload:
        opts = ref.options
        if not isinstance(opts, VaultRef):
            raise base.BackendError(
                f"vault backend {self.name!r}: credential {ref.name!r} has no vault ref"
            )
        mount, path = opts.mount.strip("/"), opts.path.strip("/")
        what = f"vault backend {self.name!r}: read {mount}/{path} (kv v{opts.kv_version})"
        token = self._token_for_read()
        try:
            return self._read(mount, path, opts.kv_version, what)
        except base.AccessDenied:
            if not self._relogin_after_denial(token):
                raise
            log.info("read denied, logged in again; retrying once", extra={"backend": self.name})
            return self._read(mount, path, opts.kv_version, what)

    def check(self) -> None:
        with self._lock:
            self._lease = None
            self._login(strict=True)

    def close(self) -> None:
        self._session.close()

    # -- reads ------------------------------------------------------------------------------

    def _read(self, mount: str, path: str, kv_version: int, what: str) -> base.Payload:
        try:
            if kv_version == 2:
                resp = self._client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=mount, raise_on_deleted_version=True
                )
            else:
                resp = self._client.secrets.kv.v1.read_secret(path=path, mount_point=mount)
        except Exception as exc:
            raise _wrap(exc, what) from exc
        body = resp.get("data") if isinstance(resp, Mapping) else None
        if not isinstance(body, Mapping):
            raise base.Unavailable(f"{what}: unexpected response shape")
        if kv_version == 1:
            return base.Payload(data=_object(body, what), version=None)
        data, metadata = body.get("data"), body.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        if data is None or metadata.get("destroyed") or metadata.get("deletion_time"):
            raise base.NotFound(f"{what}: current version is deleted or destroyed")
        version = metadata.get("version")
        return base.Payload(
            data=_object(data, what), version=None if version is None else str(version)
        )

    # -- tokens -----------------------------------------------------------------------------

    def _token_for_read(self) -> str:
        """Log in, renew or re-login as the lease requires; returns the token the read will use."""
        with self._lock:
            step = vault_auth.next_step(
                self._lease, now=self._clock(), can_login=self._auth.can_login
            )
            if step is vault_auth.Step.RENEW:
                step = self._renew()
            if step is vault_auth.Step.LOGIN:
                self._login(strict=False)
            assert self._lease is not None  # noqa: S101 - _login sets it or raises
            return self._lease.token

    def _relogin_after_denial(self, failed_token: str) -> bool:
        """After a 403: log in again, or pick up a rotated token file. True: retry the read."""
        with self._lock:
            if self._lease is not None and self._lease.token != failed_token:
                return True  # another thread already replaced the token
            if self._auth.can_login:
                self._login(strict=False)
                return True
            if not self._auth.token_file:
                return False
            if vault_auth.static_token(self._auth.token_file, backend=self.name) == failed_token:
                return False
            self._login(strict=False)
            return True

    def _renew(self) -> vault_auth.Step:
        """renew-self; the step still needed afterwards (LOGIN if renewal failed or is capped)."""
        assert self._lease is not None  # noqa: S101 - RENEW is only chosen for a lease
        what = f"vault backend {self.name!r}: token renew-self"
        try:
            resp = self._client.auth.token.renew_self()
            auth = resp["auth"]
            duration, renewable = float(auth["lease_duration"]), bool(auth["renewable"])
        except Exception as exc:
            err = _wrap(exc, what)
            log.warning("token renewal failed", extra={"backend": self.name, "error": str(err)})
            return vault_auth.Step.LOGIN if self._auth.can_login else vault_auth.Step.USE
        now = self._clock()
        self._lease = self._lease.renewed(lease_duration=duration, renewable=renewable, now=now)
        log.debug("token renewed", extra={"backend": self.name})
        return vault_auth.next_step(self._lease, now=now, can_login=self._auth.can_login)

    def _login(self, *, strict: bool) -> None:
        """Get a fresh lease (lock held). ``strict``: a static token must pass lookup-self."""
        method, mount = self._auth.method, self._auth.mount_path
        if method == "token":
            self._adopt_static_token(strict=strict)
            return
        what = f"vault backend {self.name!r}: {method} login at auth/{mount}"
        if method == "approle":
            material = vault_auth.read_secret_file(
                self._auth.secret_id_file or "", backend=self.name, key="secretIdFile"
            )
        else:
            material = vault_auth.read_secret_file(
                self._auth.jwt_file or vault_auth.DEFAULT_JWT_FILE, backend=self.name, key="jwtFile"
            )
        try:
            if method == "approle":
                resp = self._client.auth.approle.login(
                    role_id=self._auth.role_id,
                    secret_id=material,
                    mount_point=mount,
                    use_token=False,
                )
            else:
                resp = self._client.auth.kubernetes.login(
                    role=self._auth.role, jwt=material, mount_point=mount, use_token=False
                )
            auth = resp["auth"]
            token = str(auth["client_token"])
            ttl, renewable = float(auth.get("lease_duration") or 0), bool(auth.get("renewable"))
        except Exception as exc:
            raise _wrap(exc, what, login=True) from exc
        self._set_lease(
            vault_auth.Lease.granted(token, ttl=ttl, renewable=renewable, now=self._clock())
        )
        log.info("logged in to vault", extra={"backend": self.name, "method": method})

    def _adopt_static_token(self, *, strict: bool) -> None:
        token = vault_auth.static_token(self._auth.token_file, backend=self.name)
        self._client.token = token
        what = f"vault backend {self.name!r}: token lookup-self"
        try:
            data = self._client.auth.token.lookup_self()["data"]
            ttl, renewable = float(data.get("ttl") or 0), bool(data.get("renewable"))
        except Exception as exc:
            err = _wrap(exc, what)
            if strict or not isinstance(err, base.AccessDenied):
                raise err from exc
            # A token without the default policy cannot lookup-self yet may read: the read decides.
            ttl, renewable = 0, False
        self._set_lease(
            vault_auth.Lease.granted(token, ttl=ttl, renewable=renewable, now=self._clock())
        )

    def _set_lease(self, lease: vault_auth.Lease) -> None:
        self._lease = lease
        self._client.token = lease.token


def _cleartext(address: str) -> bool:
    """Whether ``address`` is plain http to a host other than loopback (127.0.0.0/8, ::1)."""
    try:
        parts = urllib.parse.urlsplit(address)
        host = parts.hostname or ""
    except ValueError:
        return False  # not a URL at all: hvac's first request says so
    if parts.scheme.lower() != "http":
        return False
    if host.rstrip(".") == "localhost":
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name other than localhost
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_loopback


def _object(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise base.InvalidPayload(f"{what}: secret data is not a key/value object")
    return dict(data)


def create(name: str, settings: Any) -> VaultBackend:
    """The plugin factory: validates ``settings`` if given as a mapping; no network I/O."""
    if not isinstance(settings, VaultSettings):
        settings = VaultSettings.model_validate(settings)
    return VaultBackend(name, settings)


PLUGIN = base.BackendPlugin(
    type_name="vault", settings_model=VaultSettings, ref_model=VaultRef, factory=create
)
