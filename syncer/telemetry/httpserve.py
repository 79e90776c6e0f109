"""A tiny HTTP/1.1 server for /metrics, /healthz and /readyz: one thread, one event loop.

Any Pod of the cluster can reach the port, so the server is bounded whatever clients do:

- one thread for every connection (an asyncio loop), never a thread per connection;
- a request's head must arrive whole within `REQUEST_TIMEOUT` seconds and fit in `MAX_HEAD`
  bytes, or the connection is closed — idle and half-sent connections never linger;
- one request per connection (`Connection: close`), the answer written within `WRITE_TIMEOUT`;
- at most `MAX_CONNECTIONS` open at once: a new one closes the oldest, so a flood of idle
  connections cannot keep a probe from being answered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus

REQUEST_TIMEOUT = 5.0
WRITE_TIMEOUT = 5.0
MAX_HEAD = 16 * 1024
MAX_CONNECTIONS = 256

# path -> (status, content type, body); computed on the loop's thread, so it must be quick.
Route = Callable[[], tuple[int, str, bytes]]


class Server:
    """Serves `routes` (exact paths; a query string is ignored) on `host:port`."""

    def __init__(self, host: str, port: int, routes: dict[str, Route], *,
                 request_timeout: float = REQUEST_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Bound here, on the caller's thread: a port in use fails the start, not a thread.
        self._sock = socket.create_server((host.strip("[]"), port), family=family, backlog=128)
        self.port = int(self._sock.getsockname()[1])
        self._routes = routes
        self._request_timeout = request_timeout
        self._max = max_connections
        self._open: collections.OrderedDict[asyncio.StreamWriter, None] = (
            collections.OrderedDict())
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="http", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self._ready.wait(5.0)

    def stop(self) -> None:
        if self.thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self.thread.join(timeout=5.0)
        else:
            self._sock.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._serve, sock=self._sock, limit=MAX_HEAD))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for writer in list(self._open):
                writer.transport.abort()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open[writer] = None
        while len(self._open) > self._max:  # the oldest gives way to the newest
            oldest = next(iter(self._open))
            self._open.pop(oldest)
            oldest.transport.abort()
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                              self._request_timeout)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ConnectionError, ValueError):
                return  # idle, half-sent, too long or gone: closed below without an answer
            status, ctype, body, head_only = self._answer(head)
            writer.write(_response(status, ctype, body, head_only=head_only))
            writer.close()  # flushes what is buffered, then closes
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT)
        finally:
            self._open.pop(writer, None)
            writer.transport.abort()  # whatever is left (a client that does not read): dropped

    def _answer(self, head: bytes) -> tuple[int, str, bytes, bool]:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, "text/plain", b"bad request\n", False
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n", False
        route = self._routes.get(target)
        if route is None:
            return 404, "text/plain", b"not found\n", method == "HEAD"
        status, ctype, body = route()
        return status, ctype, body, method == "HEAD"


def _response(status: int, ctype: str, body: bytes, *, head_only: bool) -> bytes:
    phrase = HTTPStatus(status).phrase
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + (b"" if head_only else body)
