"""A small reverse proxy in front of moto that makes ECR's GetAuthorizationToken answer like real
ECR: a new token on every call, valid for `lifetime` seconds from now. moto's own answer is
deterministic (`base64("AWS:<registryId>-auth-token")`) and expired since 2015-01-01.

Only those two fields of that one answer change — registry, proxyEndpoint, status, headers and
every other request are moto's. The proxy also records each request's target, JSON parameters
and signing access key, so tests can see whose credentials signed a call.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
_ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "host",
                         "content-length"})


@dataclass(frozen=True, slots=True)
class Seen:
    """One request relayed: its `X-Amz-Target` ("" for query protocols such as STS), its JSON
    parameters (ECR only) and the access key id of its SigV4 signature."""

    target: str
    params: dict[str, Any]
    access_key_id: str | None


@dataclass(slots=True)
class Issued:
    """A token the proxy handed out (for leak checks)."""

    password: str = field(repr=False)
    token: str = field(repr=False)
    expires_at: float


class EcrTokenProxy:
    """Threaded HTTP proxy on 127.0.0.1:<free port> in front of moto at `upstream`.

    `edit(entry)` (optional) may change each rewritten `authorizationData` entry further, e.g.
    to serve an invalid token; `marker` is put into every password (use a sentinel for leak
    checks)."""

    def __init__(self, upstream: str, *, lifetime: float = 12 * 3600.0, marker: str = "tok",
                 clock: Callable[[], float] = time.time) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self.lifetime = lifetime
        self.marker = marker
        self.clock = clock
        self.edit: Callable[[dict[str, Any]], None] | None = None
        self.seen: list[Seen] = []
        self.issued: list[Issued] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> EcrTokenProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                         name="ecr-token-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> EcrTokenProxy:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def token_calls(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.target == TARGET]

    def secrets(self) -> list[str]:
        """Every password and token issued so far."""
        with self._lock:
            return [v for i in self.issued for v in (i.password, i.token)]

    def _rewrite(self, body: bytes) -> bytes:
        doc = json.loads(body)
        for entry in doc.get("authorizationData", []):
            moto_token = base64.b64decode(entry["authorizationToken"]).decode()
            moto_password = moto_token.partition(":")[2]
            with self._lock:
                serial = len(self.issued) + 1
            password = f"{moto_password}-{self.marker}-{serial}-{secrets.token_hex(4)}"
            token = base64.b64encode(f"AWS:{password}".encode()).decode()
            expires_at = self.clock() + self.lifetime
            entry["authorizationToken"], entry["expiresAt"] = token, expires_at
            with self._lock:
                self.issued.append(Issued(password=password, token=token, expires_at=expires_at))
            if self.edit is not None:
                self.edit(entry)
        return json.dumps(doc).encode()


class _Handler(BaseHTTPRequestHandler):
    owner: EcrTokenProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def _relay(self) -> None:
        proxy = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        is_ecr = target.startswith("AmazonEC2ContainerRegistry")
        params = json.loads(body or b"{}") if is_ecr else {}
        key = _ACCESS_KEY.search(self.headers.get("Authorization", ""))
        with proxy._lock:
            proxy.seen.append(Seen(target, params, key.group(1) if key else None))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(proxy._host, proxy._port, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            answer = resp.read()
        finally:
            conn.close()
        if target == TARGET and resp.status == 200:
            answer = proxy._rewrite(answer)
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
