"""The metrics/probe server's bounds, on a real socket: idle and half-sent connections are
closed, a flood cannot keep a probe out, and no thread is started per connection."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from syncer.telemetry import httpserve


@pytest.fixture
def server() -> Iterator[httpserve.Server]:
    routes: dict[str, httpserve.Route] = {"/healthz": lambda: (200, "text/plain", b"ok\n")}
    srv = httpserve.Server("127.0.0.1", 0, routes, request_timeout=0.5, max_connections=20)
    srv.start()
    yield srv
    srv.stop()


def get(srv: httpserve.Server, path: str, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def closed(conn: socket.socket, within: float) -> bool:
    conn.settimeout(within)
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_routes_answer_and_everything_else_is_refused(server: httpserve.Server) -> None:
    assert get(server, "/healthz?x=1") == (200, b"ok\n")
    assert get(server, "/healthz", "HEAD") == (200, b"")
    assert get(server, "/nope")[0] == 404
    assert get(server, "/healthz", "POST")[0] == 405


def test_idle_and_half_sent_connections_are_closed_after_the_request_timeout(
        server: httpserve.Server) -> None:
    idle = socket.create_connection(("127.0.0.1", server.port))
    half = socket.create_connection(("127.0.0.1", server.port))
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()

    assert closed(idle, within=3) and closed(half, within=3)
    assert time.monotonic() - started < 2
    idle.close()
    half.close()


def test_a_flood_of_idle_connections_neither_starts_threads_nor_keeps_a_probe_out(
        server: httpserve.Server) -> None:
    threads = threading.active_count()
    flood = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]

    assert get(server, "/healthz") == (200, b"ok\n")
    assert threading.active_count() == threads
    assert closed(flood[0], within=1)  # the oldest gave way to newer connections
    for conn in flood:
        conn.close()


def test_a_head_longer_than_the_limit_is_closed_without_an_answer(
        server: httpserve.Server) -> None:
    conn = socket.create_connection(("127.0.0.1", server.port))
    conn.sendall(b"GET /healthz HTTP/1.1\r\nX: " + b"a" * (httpserve.MAX_HEAD + 10))

    assert closed(conn, within=2)
    conn.close()
