"""A small token server of the Docker Registry token spec, for distribution's `auth: token` mode.

`GET <realm>?service=…&scope=…&account=…` with Basic auth answers
`{"token", "access_token", "expires_in", "issued_at"}`; the token is a JWT signed ES256 by a key
whose certificate (issued by the session CA, which is the registry's `rootcertbundle`) rides in
the `x5c` header — what distribution 2.8's `registry/auth/token` verifies (issuer, audience =
service, exp/nbf, signature by a key chained to the roots). Every granted scope gets the actions
it asked for: the point is authentication, not authorization.

Why our own: the real one we would build (cesanta/docker_auth) is refused by the Go module proxy
here. The registry in front of it is always the real binary. Users change live (`set_users`);
every request is recorded (`requests`, `count`) without any credential.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import json
import secrets
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from stack import pki

TOKEN_PATH = "/token"


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request the token server saw. `authorization`: an Authorization header arrived."""

    method: str
    path: str
    service: str | None
    scopes: tuple[str, ...]
    account: str | None
    authorization: bool
    status: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenServer:
    """Threaded token server on `host`:<free port>, http or (with `serving_cert`) https."""

    def __init__(self, *, signer: pki.CertPair, issuer: str, service: str,
                 users: Mapping[str, str] | None = None, host: str = "127.0.0.1",
                 serving_cert: pki.CertPair | None = None, lifetime: int = 300) -> None:
        self.issuer = issuer
        self.service = service
        self.host = host
        self.lifetime = lifetime
        self._serving_cert = serving_cert
        key = serialization.load_pem_private_key(signer.key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("the token signer must be an EC P-256 key")
        self._key = key
        leaf = x509.load_pem_x509_certificates(signer.cert_file.read_bytes())[0]
        self._x5c = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()]
        self._lock = threading.Lock()
        self._users = dict(users or {})
        self._records: list[TokenRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def realm(self) -> str:
        return self.url + TOKEN_PATH

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TokenServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        server = _Server((self.host, 0), Handler)
        scheme = "http"
        if self._serving_cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self._serving_cert.cert_file),
                                str(self._serving_cert.key_file))
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        self._server = server
        self.url = f"{scheme}://{self.host}:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"token-server-{server.server_address[1]}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ------------------------------------------------------------------ users, counters

    def set_users(self, users: Mapping[str, str]) -> None:
        """Replace the accepted user → password table (takes effect on the next request)."""
        with self._lock:
            self._users = dict(users)

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._records)

    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def reset_counts(self) -> None:
        with self._lock:
            self._records.clear()

    # ------------------------------------------------------------------ answers

    def _authenticate(self, header: str | None) -> str | None:
        """The user named by a valid Basic header, else None."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, ValueError):
            return None
        with self._lock:
            expected = self._users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return user

    def _token(self, *, subject: str, scopes: tuple[str, ...]) -> str:
        now = int(time.time())
        access: list[dict[str, Any]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                access.append({"type": kind, "name": name,
                               "actions": [a for a in actions.split(",") if a]})
        header = {"typ": "JWT", "alg": "ES256", "x5c": self._x5c}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service,
                  "exp": now + self.lifetime, "nbf": now - 10, "iat": now,
                  "jti": secrets.token_hex(8), "access": access}
        signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims))
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)  # JOSE wants r || s, 32 bytes each
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _answer(self, method: str, target: str, authorization: str | None,
                ) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        service = (query.get("service") or [None])[0]
        scopes = tuple(s for value in query.get("scope", []) for s in value.split(" ") if s)
        account = (query.get("account") or [None])[0]
        status, body = self._decide(method, parts.path, service, scopes, authorization)
        with self._lock:
            self._records.append(TokenRequest(method, parts.path, service, scopes, account,
                                              authorization is not None, status))
        return status, body

    def _decide(self, method: str, path: str, service: str | None, scopes: tuple[str, ...],
                authorization: str | None) -> tuple[int, dict[str, Any]]:
        if method != "GET" or path != TOKEN_PATH:
            return 404, {"errors": [{"code": "NOT_FOUND", "message": "not a token endpoint"}]}
        if service != self.service:
            return 400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]}
        user = self._authenticate(authorization)
        if user is None:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication failed"}]}
        token = self._token(subject=user, scopes=scopes)
        issued = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return 200, {"token": token, "access_token": token, "expires_in": self.lifetime,
                     "issued_at": issued}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that left, TLS handshakes that failed: not the test's business


class _Handler(BaseHTTPRequestHandler):
    server_owner: TokenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, doc = self.server_owner._answer(self.command, self.path,
                                                self.headers.get("Authorization"))
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="pss-test-token-server"')
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815
