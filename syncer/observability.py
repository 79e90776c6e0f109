"""Metrics (SPEC §8), structured logging, and the /metrics /healthz /readyz HTTP endpoints.

Metric labels carry credential and mapping names only — never a namespace or a value.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge

PREFIX = "pullsecret_syncer_"
LOG_KEYS = ("credential", "mapping", "namespace", "action", "kind", "object", "registry", "error",
            "backend", "retry_in", "done", "total", "left_seconds", "manager")


class Metrics:
    """The SPEC §8 metric set, registered in `registry` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.credential_fetch = Counter(
            f"{PREFIX}credential_fetch_total", "Credential reads by result",
            ["credential", "result"], registry=r)
        self.credential_up = Gauge(
            f"{PREFIX}credential_up", "1 when the last read of the credential succeeded",
            ["credential"], registry=r)
        self.credential_last_success = Gauge(
            f"{PREFIX}credential_last_success_timestamp_seconds",
            "Unix time of the last successful read", ["credential"], registry=r)
        self.credential_last_change = Gauge(
            f"{PREFIX}credential_last_change_timestamp_seconds",
            "Unix time the credential's content last changed", ["credential"], registry=r)
        self.kube_writes = Counter(
            f"{PREFIX}kube_writes_total", "Write requests to the Kubernetes API",
            ["kind", "action"], registry=r)
        self.managed_secrets = Gauge(
            f"{PREFIX}managed_secrets", "Secrets managed per mapping", ["mapping"], registry=r)
        self.reconcile_errors = Counter(
            f"{PREFIX}reconcile_errors_total", "Reconcile errors by reason", ["reason"],
            registry=r)
        self.conflicts = Counter(
            f"{PREFIX}conflicts_total", "Conflicts found (unmanaged secret, mapping overlap)",
            ["kind"], registry=r)
        self.is_leader = Gauge(f"{PREFIX}is_leader", "1 while this replica writes", registry=r)

        self.credential_expiry = Gauge(
            f"{PREFIX}credential_expiry_timestamp_seconds",
            "Unix time the current value of a token credential expires", ["credential"],
            registry=r)
        self.credential_verify = Counter(
            f"{PREFIX}credential_verify_total",
            "Registry login checks of new credential values, by result",
            ["credential", "result"], registry=r)
        self.pods_recycled = Counter(
            f"{PREFIX}pods_recycled_total", "Pods evicted to pick up the pull secret",
            ["mapping"], registry=r)
        self.contested_serviceaccounts = Gauge(
            f"{PREFIX}contested_serviceaccounts",
            "ServiceAccounts whose imagePullSecrets entry another writer keeps removing",
            ["mapping"], registry=r)

    def record_write(self, kind: str, action: str) -> None:
        self.kube_writes.labels(kind=kind, action=action).inc()

    def credential_read(self, name: str, *, ok: bool, now: float,
                        changed: bool = False) -> None:
        """One read of a credential from its backend (the one place these metrics are set)."""
        self.credential_fetch.labels(credential=name, result="success" if ok else "error").inc()
        self.credential_up.labels(credential=name).set(1 if ok else 0)
        if ok:
            self.credential_last_success.labels(credential=name).set(now)
        if changed:
            self.credential_last_change.labels(credential=name).set(now)

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with level, msg and the structured keys that apply."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        for key in LOG_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                doc[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = record.exc_info[0].__name__  # type only: messages may hold data
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={record.__dict__[key]}" for key in LOG_KEYS
            if record.__dict__.get(key) is not None
        )
        line = f"{record.levelname.lower():7} {record.getMessage()}"
        return f"{line} {extras}" if extras else line


def setup_logging(*, fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "kubernetes", "botocore", "boto3", "hvac"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class HttpServer:
    """Serves /metrics, /healthz and /readyz on a background thread."""

    def __init__(self, addr: str, *, metrics: Metrics, healthy: Callable[[], bool],
                 ready: Callable[[], bool]) -> None:
        host, _, port = addr.rpartition(":")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, outer.metrics.render(), prometheus_client.CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    ok = outer.healthy()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
                elif self.path == "/readyz":
                    ok = outer.ready()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.metrics = metrics
        self.healthy = healthy
        self.ready = ready
        self.server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)  # noqa: S104
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
