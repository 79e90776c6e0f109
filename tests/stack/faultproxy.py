"""A fault-injecting HTTP(S) reverse proxy for tests, in front of any server of the stack.

Rules (each optionally limited by `method=`, `path=` — a regex searched in path+query — and
`times=`) answer an error status, delay, reset the connection, or end a watch stream early.
Every request is recorded (method, path, query, status) so tests can count API calls and writes.
Responses are relayed as they arrive, so chunked watch streams stay streams.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stack import faults, pki

RequestRecord = faults.RequestRecord


class FaultProxy:
    """Threaded reverse proxy on 127.0.0.1:<free port> in front of `upstream_url`."""

    def __init__(self, upstream_url: str, *, serving_cert: pki.CertPair | None = None,
                 upstream_ca: str | Path | None = None,
                 serving_ca_file: Path | None = None) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, not {upstream_url!r}")
        self.upstream_url = upstream_url
        self._up_scheme = parts.scheme
        self._up_host = parts.hostname
        self._up_port = parts.port or (443 if parts.scheme == "https" else 80)
        self._up_netloc = parts.netloc
        self._up_prefix = parts.path.rstrip("/")
        self._up_ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            if upstream_ca is not None:
                self._up_ssl = ssl.create_default_context(cafile=str(upstream_ca))
            else:  # a test tool: not verifying the upstream is acceptable
                self._up_ssl = ssl._create_unverified_context()  # noqa: S323
            self._up_ssl.set_alpn_protocols(["http/1.1"])
        self._serving_cert = serving_cert
        self.ca_file = serving_ca_file  # the CA that verifies `url` in TLS mode
        self._lock = threading.Lock()
        self._rules: list[faults.Rule] = []
        self._entries: list[faults.Entry] = []
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        server = _Server(("127.0.0.1", 0), Handler)
        scheme = "http"
        if self._serving_cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self._serving_cert.cert_file), str(self._serving_cert.key_file))
            ctx.set_alpn_protocols(["http/1.1"])
            server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
            scheme = "https"
        self._server = server
        self.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fault-proxy-{server.server_address[1]}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection (streams end, delays return)."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _close_quietly(sock)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ rules

    def _add(self, action: str, method: str | None, path: str | None, times: int | None,
             **kwargs: Any) -> None:
        rule = faults.Rule(action=action, method=method.upper() if method else None,
                     path=re.compile(path) if path is not None else None, remaining=times,
                     **kwargs)
        with self._lock:
            self._rules.append(rule)

    def fail(self, status: int, *, method: str | None = None, path: str | None = None,
             times: int | None = None, body: bytes | str | None = None,
             headers: dict[str, str] | None = None) -> None:
        """Answer matching requests with `status` and a plausible body (429: Retry-After: 1)."""
        raw = body.encode() if isinstance(body, str) else body
        self._add("fail", method, path, times, status=status, body=raw, headers=headers)

    def delay(self, seconds: float, *, method: str | None = None, path: str | None = None,
              times: int | None = None) -> None:
        """Hold matching requests for `seconds` before forwarding them."""
        self._add("delay", method, path, times, seconds=seconds)

    def reset(self, *, method: str | None = None, path: str | None = None,
              times: int | None = None) -> None:
        """Close matching connections with a TCP RST, without answering."""
        self._add("reset", method, path, times)

    def cut_watch(self, *, after_seconds: float, method: str | None = None,
                  path: str | None = None, times: int | None = None,
                  abrupt: bool = False) -> None:
        """Relay matching watch streams (`watch=1|true`) but end them after `after_seconds`:
        cleanly (final chunk, like an apiserver timeout) or, with `abrupt`, by RST."""
        self._add("cut_watch", method, path, times, seconds=after_seconds, abrupt=abrupt)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def _take_rules(self, method: str, target: str, query: str) -> list[faults.Rule]:
        taken: list[faults.Rule] = []
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, target, query):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    taken.append(rule)
                    if rule.action in ("fail", "reset"):
                        break
        return taken

    # ------------------------------------------------------------------ counters

    @property
    def requests(self) -> list[faults.RequestRecord]:
        """Snapshot of every request seen since start / `reset_counts()`."""
        with self._lock:
            return [e.freeze() for e in self._entries]

    def count(self, *, method: str | None = None, path: str | None = None) -> int:
        """Requests with `method` whose path+query matches the regex `path`."""
        pattern = re.compile(path) if path is not None else None
        return sum(
            1 for r in self.requests
            if (method is None or r.method == method.upper())
            and (pattern is None or pattern.search(r.target))
        )

    def writes(self) -> int:
        """Requests with method POST, PUT, PATCH or DELETE."""
        return sum(1 for r in self.requests if r.method in faults.WRITE_METHODS)

    def reset_counts(self) -> None:
        with self._lock:
            self._entries.clear()

    def _record(self, method: str, path: str, query: str) -> faults.Entry:
        entry = faults.Entry(method, path, query)
        with self._lock:
            self._entries.append(entry)
        return entry

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def _upstream(self) -> http.client.HTTPConnection:
        if self._up_ssl is not None:
            return http.client.HTTPSConnection(self._up_host, self._up_port, timeout=30,
                                               context=self._up_ssl)
        return http.client.HTTPConnection(self._up_host, self._up_port, timeout=30)


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError | ValueError):  # connections we reset or clients that left
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Handles one client connection (keep-alive) of a FaultProxy."""

    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method, including Vault's LIST
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        self.owner._track(self.connection, add=False)

    # ------------------------------------------------------------------ request

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _handle(self) -> None:
        proxy = self.owner
        parts = urlsplit(self.path)
        path, query = parts.path or "/", parts.query
        target = f"{path}?{query}" if query else path
        body = self._read_body()
        entry = proxy._record(self.command, path, query)
        rules = proxy._take_rules(self.command, target, query)
        cut: faults.Rule | None = None
        for rule in rules:
            if rule.action == "delay":
                if proxy._stop.wait(rule.seconds):
                    return self._reset(entry)
            elif rule.action == "fail":
                return self._fail(entry, rule, path)
            elif rule.action == "reset":
                return self._reset(entry)
            elif rule.action == "cut_watch":
                cut = rule
        self._forward(entry, target, body, cut)
        return None

    # ------------------------------------------------------------------ injected answers

    def _fail(self, entry: faults.Entry, rule: faults.Rule, path: str) -> None:
        body, ctype = faults.fault_body(rule.status, path, self.headers)
        if rule.body is not None:
            body = rule.body
        headers = {"Content-Type": ctype}
        if rule.status == 429:
            headers["Retry-After"] = "1"
        headers.update(rule.headers or {})
        entry.status, entry.injected = rule.status, "fail"
        self.send_response(rule.status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self, entry: faults.Entry) -> None:
        entry.injected = "reset"
        self.close_connection = True
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for stream in (self.rfile, self.wfile):
            try:
                stream.close()
            except OSError:
                pass
        try:
            sock.close()  # with linger 0: RST, no FIN
        except OSError:
            pass

    # ------------------------------------------------------------------ forwarding

    def _forward(self, entry: faults.Entry, target: str, body: bytes | None,
                 cut: faults.Rule | None) -> None:
        proxy = self.owner
        headers = {k: v for k, v in self.headers.items() if k.lower() not in faults.HOP_BY_HOP}
        headers["Host"] = proxy._up_netloc
        if body is not None or self.command in faults.WRITE_METHODS:
            headers["Content-Length"] = str(len(body or b""))
        conn = proxy._upstream()
        try:
            conn.request(self.command, proxy._up_prefix + target, body=body, headers=headers)
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            entry.status = 502
            message = f"fault proxy: upstream {proxy.upstream_url} unreachable: {exc}".encode()
            self.send_response(502)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)
            return
        upstream_sock = conn.sock
        if upstream_sock is not None:
            upstream_sock.settimeout(None)  # watches may stay silent for long
            proxy._track(upstream_sock, add=True)
        try:
            self._relay(entry, resp, cut, upstream_sock)
        finally:
            if upstream_sock is not None:
                proxy._track(upstream_sock, add=False)
            conn.close()

    def _relay(self, entry: faults.Entry, resp: http.client.HTTPResponse, cut: faults.Rule | None,
               upstream_sock: socket.socket | None) -> None:
        entry.status = resp.status
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        length = resp.getheader("Content-Length")
        chunked = not no_body and (length is None or resp.chunked)
        self.send_response_only(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in faults.HOP_BY_HOP:
                self.send_header(key, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not no_body:
            self.send_header("Content-Length", str(length))
        if resp.will_close or (chunked and cut is not None):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if no_body:
            return

        cut_done = threading.Event()
        timer: threading.Timer | None = None
        if cut is not None and upstream_sock is not None:
            def fire() -> None:
                cut_done.set()
                entry.injected = "cut"
                if cut.abrupt:
                    self._reset(entry)
                try:
                    upstream_sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            timer = threading.Timer(cut.seconds, fire)
            timer.daemon = True
            timer.start()
        try:
            while True:
                try:
                    data = resp.read1(65536)
                except (OSError, http.client.HTTPException, ValueError):
                    data = b""
                if not data:
                    break
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
            if cut_done.is_set() and cut is not None and cut.abrupt:
                return
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            if timer is not None:
                timer.cancel()
            if cut_done.is_set() or (not chunked and resp.length):
                self.close_connection = True
