"""Bounded HTTP for the registry login check: a total deadline per request, not only per read.

`requests` (and urllib3 below it) bound each socket operation, not a request: a registry that
drips one byte every few seconds, or a body of hundreds of megabytes, holds a request for as
long as it likes. Here every socket a check opens is registered with its `Watchdog`; when a
request's deadline passes, the watchdog shuts those sockets down, so the blocked read returns at
once (on plain and TLS connections alike: `shutdown` acts on the connection, whichever
descriptor calls it) and the request fails. The caller knows from `Watchdog.fired` that time ran
out rather than the network.

Bodies are never read whole: the caller streams and stops at a limit (`read_limited`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.connectionpool

MAX_ANSWER = 64 * 1024  # bytes of any answer's body that a check reads, at most


class Watchdog:
    """Shuts down every socket of one check when a request's deadline passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fired = False

    def register(self, sock: socket.socket) -> None:
        # A duplicate descriptor: TLS wrapping detaches the original socket object, and a
        # shutdown through any descriptor of the connection ends the blocked read.
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            fired = self.fired
        if fired:
            _shutdown(dup)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Within the block, the check's sockets are shut down `seconds` from now."""
        timer = threading.Timer(max(seconds, 0.0), self.fire)
        timer.daemon = True
        timer.name = "verify-deadline"
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def close(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _pool_classes(register: Callable[[socket.socket], None]) -> dict[str, Any]:
    class Connection(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            register(sock)
            return sock

    class TLSConnection(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            register(sock)
            return sock

    class Pool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSPool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    return {"http": Pool, "https": TLSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    """Every connection it opens (directly or through an HTTP(S) proxy) is watched."""

    def __init__(self, watchdog: Watchdog) -> None:
        self._watchdog = watchdog  # before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._watchdog.register)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = _pool_classes(self._watchdog.register)
        return manager


def session(watchdog: Watchdog) -> requests.Session:
    """A session whose every connection `watchdog` can cut."""
    http = requests.Session()
    adapter = _Adapter(watchdog)
    http.mount("https://", adapter)
    http.mount("http://", adapter)
    return http


class TooLong(Exception):
    """An answer's body is longer than the check reads."""


def read_limited(chunks: Iterator[bytes], *, limit: int = MAX_ANSWER) -> bytes:
    """The body from `chunks`, or TooLong as soon as it passes `limit` bytes."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise TooLong
    return bytes(body)
