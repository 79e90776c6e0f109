# ruff: noqa: F811 - the fixtures imported from test_backend_vault are parameters here
"""No Vault credential leaves its origin: a redirect to another scheme, host or port is never
followed, for every auth method and every request, and nothing answered there is accepted.

Real OpenBao behind the fault proxy, which answers chosen requests with a `307` whose Location
is a capture server on loopback (another host, 127.0.0.2, or another port, or another scheme).
The capture server records every byte it receives and would answer with a payload of its own;
the test asserts it received nothing and that its payload never came back as a credential.
The Kubernetes JWT is a sentinel file: its login is redirected before OpenBao would see it.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from backends import base
from tests.integration.test_backend_vault import (  # noqa: F401 - fixtures
    approle,
    create_token,
    exact,
    open_backend,
    reader_policy,
    ref,
    secret_path,
    token_file,
)

pytestmark = pytest.mark.integration

CAPTURED_PAYLOAD = "CAPTURED-SENTINEL-payload"


class CaptureServer:
    """Accepts connections on `host`, records what arrives, answers like Vault would."""

    def __init__(self, host: str) -> None:
        self._server = socket.create_server((host, 0))
        self.host, self.port = host, self._server.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True, name="capture").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    continue
                body = json.dumps({
                    "data": {"data": {"username": "evil", "password": CAPTURED_PAYLOAD},
                             "metadata": {"version": 1}},
                    "auth": {"client_token": CAPTURED_PAYLOAD, "lease_duration": 3600,
                             "renewable": False}}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer("127.0.0.2")  # another host as far as any client can tell
    yield server
    server.close()


def redirect(proxy: Any, path: str, location: str, method: str) -> None:
    proxy.fail(307, method=method, path=exact(path), headers={"Location": location})


def caught(call: Callable[[], Any], *secrets: str) -> str:
    """The error of `call` — Unavailable — as text, checked for every secret."""
    with pytest.raises(base.Unavailable) as info:
        call()
    text = "".join(traceback.format_exception(info.value)) + repr(info.value)
    for secret in secrets:
        assert secret not in text
    assert CAPTURED_PAYLOAD not in text
    return str(info.value)


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)


@pytest.mark.parametrize("where", ["other-host", "other-port", "other-scheme"])
def test_a_token_read_redirected_elsewhere_is_not_followed_and_names_the_host(
    vault: Any, open_backend: Any, fault_proxy: Any, secret_path: str, unique: str,
    tmp_path: Path, capture: CaptureServer, caplog: pytest.LogCaptureFixture, where: str,
) -> None:
    token = create_token(vault, policies=[reader_policy(
        vault, f"redir-{unique}", f"{vault.kv2_mount}/data/{secret_path}")])
    proxy = fault_proxy(vault.addr)
    proxy_port = urlsplit(proxy.url).port
    path = f"/v1/{vault.kv2_mount}/data/{secret_path}"
    location, shown = {
        "other-host": (f"http://{capture.host}:{capture.port}{path}",
                       f"{capture.host}:{capture.port}"),
        "other-port": (f"http://127.0.0.1:{capture.port}{path}", f"127.0.0.1:{capture.port}"),
        "other-scheme": (f"https://127.0.0.1:{proxy_port}{path}", f"127.0.0.1:{proxy_port}"),
    }[where]
    redirect(proxy, path, location, "GET")
    backend = open_backend({"address": proxy.url, "auth": {
        "method": "token", "tokenFile": token_file(tmp_path, token)}})

    message = caught(lambda: backend.fetch(ref(secret_path)), token)

    assert shown in message and "redirect" in message
    assert capture.received == []  # nothing was sent there: no token, no request at all
    assert proxy.count(method="GET", path=exact(path)) == 1  # and it was not retried
    assert token not in logged(caplog) and CAPTURED_PAYLOAD not in logged(caplog)


def test_a_redirected_token_lookup_is_not_followed(
    vault: Any, open_backend: Any, fault_proxy: Any, tmp_path: Path, capture: CaptureServer,
) -> None:
    token = create_token(vault, policies=["default"])
    proxy = fault_proxy(vault.addr)
    path = "/v1/auth/token/lookup-self"
    redirect(proxy, path, f"http://{capture.host}:{capture.port}{path}", "GET")
    backend = open_backend({"address": proxy.url, "auth": {
        "method": "token", "tokenFile": token_file(tmp_path, token)}})

    message = caught(backend.check, token)

    assert f"{capture.host}:{capture.port}" in message
    assert capture.received == []


def test_a_redirected_approle_login_sends_no_secret_id_and_takes_no_token(
    vault: Any, open_backend: Any, fault_proxy: Any, approle: dict[str, Any],
    secret_path: str, capture: CaptureServer, caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = fault_proxy(vault.addr)
    login = f"/v1/auth/{approle['mount']}/login"
    redirect(proxy, login, f"http://{capture.host}:{capture.port}{login}", "POST")
    backend = open_backend({"address": proxy.url, "auth": approle["auth"]})

    message = caught(lambda: backend.fetch(ref(secret_path)),
                     approle["secret_id"])

    assert f"{capture.host}:{capture.port}" in message
    assert capture.received == []  # a 307 would have resent the body with the secret_id
    assert proxy.count(method="GET") == 0  # no read with a token from elsewhere
    assert approle["secret_id"] not in logged(caplog)


def test_an_approle_read_redirected_after_login_carries_no_token_away(
    vault: Any, open_backend: Any, fault_proxy: Any, approle: dict[str, Any],
    secret_path: str, capture: CaptureServer,
) -> None:
    proxy = fault_proxy(vault.addr)
    path = f"/v1/{vault.kv2_mount}/data/{secret_path}"
    backend = open_backend({"address": proxy.url, "auth": approle["auth"]})
    assert dict(backend.fetch(ref(secret_path)).data)["password"]

    redirect(proxy, path, f"http://{capture.host}:{capture.port}{path}", "GET")
    message = caught(lambda: backend.fetch(ref(secret_path)),
                     approle["secret_id"])

    assert f"{capture.host}:{capture.port}" in message
    assert capture.received == []


def test_a_redirected_kubernetes_login_sends_no_jwt(
    vault: Any, open_backend: Any, fault_proxy: Any, tmp_path: Path, capture: CaptureServer,
    secret_path: str, caplog: pytest.LogCaptureFixture,
) -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.SENTINEL-jwt-payload.c2lnbmF0dXJl"
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text(jwt)
    proxy = fault_proxy(vault.addr)
    login = "/v1/auth/kubernetes/login"
    redirect(proxy, login, f"http://{capture.host}:{capture.port}{login}", "POST")
    backend = open_backend({"address": proxy.url, "auth": {
        "method": "kubernetes", "role": "puller", "jwtFile": str(jwt_file)}})

    message = caught(lambda: backend.fetch(ref(secret_path)), jwt)

    assert f"{capture.host}:{capture.port}" in message
    assert capture.received == []
    assert jwt not in logged(caplog)


def test_a_redirect_within_the_origin_is_still_followed(
    vault: Any, open_backend: Any, fault_proxy: Any, secret_path: str,
    tmp_path: Path, unique: str,
) -> None:
    """Same scheme, host and port: nothing leaves the origin, so Vault's own redirect works."""
    token = create_token(vault, policies=[reader_policy(
        vault, f"same-{unique}", f"{vault.kv2_mount}/data/{secret_path}")])
    proxy = fault_proxy(vault.addr)
    path = f"/v1/{vault.kv2_mount}/data/{secret_path}"
    proxy.fail(307, method="GET", path=exact(path), times=1,
               headers={"Location": f"{proxy.url}{path}"})
    backend = open_backend({"address": proxy.url, "auth": {
        "method": "token", "tokenFile": token_file(tmp_path, token)}})

    payload = backend.fetch(ref(secret_path))

    assert dict(payload.data)["password"] != CAPTURED_PAYLOAD
    assert proxy.count(method="GET", path=exact(path)) == 2  # the 307, then the real read
