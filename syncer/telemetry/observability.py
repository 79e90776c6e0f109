"""Metrics (docs/operations.md), structured logging, and the /metrics /healthz /readyz HTTP
endpoints.

Metric labels carry credential and mapping names only — never a namespace or a value.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge

from syncer.telemetry import httpserve

PREFIX = "pullsecret_syncer_"
LOG_KEYS = ("credential", "mapping", "namespace", "action", "kind", "object", "registry", "error",
            "backend", "retry_in", "done", "total", "left_seconds", "manager")


class Metrics:
    """The metric set (docs/operations.md), registered in `registry` (a fresh one per test)."""

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
    """Serves /metrics, /healthz and /readyz on one background thread (`telemetry.httpserve`)."""

    def __init__(self, addr: str, *, metrics: Metrics, healthy: Callable[[], bool],
                 ready: Callable[[], bool]) -> None:
        host, _, port = addr.rpartition(":")
        self.metrics = metrics
        self.healthy = healthy
        self.ready = ready

        def probe(check: Callable[[], bool], bad: bytes) -> httpserve.Route:
            def answer() -> tuple[int, str, bytes]:
                ok = check()
                return (200 if ok else 503), "text/plain", (b"ok\n" if ok else bad)
            return answer

        self.server = httpserve.Server(host or "0.0.0.0", int(port), {  # noqa: S104
            "/metrics": lambda: (200, prometheus_client.CONTENT_TYPE_LATEST,
                                 self.metrics.render()),
            "/healthz": probe(lambda: self.healthy(), b"unhealthy\n"),
            "/readyz": probe(lambda: self.ready(), b"not ready\n"),
        })
        self.thread = self.server.thread

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
