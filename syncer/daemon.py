"""`pullsecret-syncer run`: keeps every namespace right over time.

Threads: three watch caches feed a de-duplicating work queue of namespaces; the refresher reads
credentials on their intervals; one worker turns queued namespaces (or "everything") into
reconcile passes over the caches; a resync re-lists everything periodically; the config file is
re-read on SIGHUP or when it changes on disk. With --leader-elect only the Lease holder reads
backends and writes.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from backends import base
from syncer import (
    config,
    credentials,
    engine,
    informer,
    kube,
    leader,
    model,
    observability,
    refresher,
)

log = logging.getLogger(__name__)

CONFIG_POLL_SECONDS = 1.0
DEBOUNCE_SECONDS = 0.05
MAX_RETRY_DELAY = 60.0


class WorkQueue:
    """Namespaces waiting for a pass; `None` means all of them. Duplicates collapse."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._full = False

    def add(self, namespace: str | None) -> None:
        with self._cond:
            if namespace is None:
                self._full = True
            else:
                self._pending.add(namespace)
            self._cond.notify()

    def take(self, timeout: float) -> tuple[bool, set[str]] | None:
        """Wait for work: (full pass?, namespaces), or None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._pending, timeout):
                return None
            full, pending = self._full, self._pending
            self._full, self._pending = False, set()
            return full, pending


def _fingerprint(path: Path) -> str:
    """Content hash of the config file, following symlinks (a ConfigMap's `..data` swap)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


class Daemon:
    def __init__(self, cfg: config.Config, args: argparse.Namespace, *,
                 backends: dict[str, base.Backend], stop: threading.Event | None = None) -> None:
        self.cfg = cfg
        self.args = args
        self.stop = stop or threading.Event()
        self.metrics = observability.Metrics()
        self.queue = WorkQueue()
        self.ready = threading.Event()
        self.reload_requested = threading.Event()
        kconf = kube.load_configuration(kubeconfig=args.kubeconfig, context=args.context)
        self.client = kube.Kube(kconf, qps=args.kube_qps, burst=args.kube_burst, stop=self.stop,
                                on_write=self.metrics.record_write)
        self.caches = informer.Caches(self.client, on_change=self.queue.add, stop=self.stop)
        self.engine = engine.Engine(self.client, metrics=self.metrics,
                                    note_secret=self.caches.note_secret,
                                    note_service_account=self._note_sa)
        self.refresher = refresher.Refresher(metrics=self.metrics, on_change=self._on_rotation,
                                             stop=self.stop)
        self.backends = backends
        self.refresher.configure(cfg, self.backends)
        self.elector: leader.LeaderElector | None = None
        if args.leader_elect:
            namespace = args.leader_election_namespace or os.environ.get("POD_NAMESPACE", "")
            self.elector = leader.LeaderElector(
                self.client, namespace=namespace, identity=leader.default_identity(),
                on_started=self._started_leading, on_stopped=self._stopped_leading,
                stop=self.stop)
        self.worker = threading.Thread(target=self._work, name="worker", daemon=True)
        self.housekeeper = threading.Thread(target=self._housekeep, name="housekeeping",
                                            daemon=True)
        self._config_fp = _fingerprint(cfg.path)
        self._last_resync = time.monotonic()
        self.http = observability.HttpServer(args.http_addr, metrics=self.metrics,
                                             healthy=self.healthy, ready=self.is_ready)

    # ---- state --------------------------------------------------------------------------
    def leading(self) -> bool:
        return self.elector is None or self.elector.is_leader.is_set()

    def healthy(self) -> bool:
        threads = [self.worker, self.housekeeper, self.refresher.thread]
        return all(t.is_alive() for t in threads) and self.caches.alive()

    def is_ready(self) -> bool:
        return self.ready.is_set() or not self.leading()

    def _note_sa(self, sa: model.ServiceAccount) -> None:
        self.caches.service_accounts.put(sa, sa.resource_version)

    def _on_rotation(self, names: set[str]) -> None:
        self.queue.add(None)  # the diff rewrites exactly the Secrets whose content changed

    def _started_leading(self) -> None:
        self.metrics.is_leader.set(1)
        self.refresher.set_active(True)
        self.queue.add(None)

    def _stopped_leading(self) -> None:
        self.metrics.is_leader.set(0)
        self.refresher.set_active(False)

    # ---- lifecycle ----------------------------------------------------------------------
    def run(self) -> None:
        self.http.start()
        log.info("starting", extra={"object": self.args.http_addr})
        self.caches.start()
        self.refresher.start()
        self.worker.start()
        self.housekeeper.start()
        if self.elector is not None:
            self.metrics.is_leader.set(0)
            self.elector.start()
        else:
            self._started_leading()
        self.stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        log.info("stopping")
        self.worker.join(timeout=8.0)  # the in-flight write finishes, the rest waits
        if self.elector is not None:
            self.elector.release()
        credentials.close_backends(self.backends)
        self.http.stop()
        self.client.close()

    # ---- the worker ---------------------------------------------------------------------
    def _work(self) -> None:
        failures = 0
        while not self.stop.is_set():
            item = self.queue.take(timeout=1.0)
            if item is None:
                continue
            full, namespaces = item
            if not self.leading():
                continue
            if not (self.caches.synced() and self.refresher.settled()):
                self.queue.add(None)  # nothing to compare against yet
                self.stop.wait(0.2)
                continue
            self.stop.wait(DEBOUNCE_SECONDS)  # let a burst of events collapse into one pass
            more = self.queue.take(timeout=0)
            if more is not None:
                full = full or more[0]
                namespaces |= more[1]
            report = self.engine.reconcile(
                self.cfg, self.refresher.values(), self.caches.view(),
                scope=None if full else namespaces,
                proceed=lambda: not self.stop.is_set() and self.leading())
            if report.failures and not self.stop.is_set():
                failures += 1
                delay = min(MAX_RETRY_DELAY, 2.0 ** failures)
                log.warning("pass had failures; retrying", extra={"retry_in": delay})
                self._retry_later(delay, None if full else namespaces)
            else:
                failures = 0
            if full and not report.interrupted and self.leading():
                self.ready.set()

    def _retry_later(self, delay: float, namespaces: set[str] | None) -> None:
        def requeue() -> None:
            if namespaces is None:
                self.queue.add(None)
            else:
                for ns in namespaces:
                    self.queue.add(ns)
        timer = threading.Timer(delay, requeue)
        timer.daemon = True
        timer.start()

    # ---- resync and config reload ---------------------------------------------------------
    def _housekeep(self) -> None:
        while not self.stop.wait(CONFIG_POLL_SECONDS):
            if self.reload_requested.is_set() or _fingerprint(self.cfg.path) != self._config_fp:
                hup = self.reload_requested.is_set()
                self.reload_requested.clear()
                self.reload()
                if hup:  # SIGHUP also means: read every credential now
                    self.refresher.refresh_all()
            if time.monotonic() - self._last_resync >= self.args.resync_interval:
                self.resync()

    def resync(self) -> None:
        """Re-list everything (repairs what a watch missed) and run a full pass."""
        self._last_resync = time.monotonic()
        try:
            for inf in self.caches.all:
                inf.relist()
            self._list_unmanaged()
        except kube.KubeError as exc:
            log.warning("resync failed", extra={"error": str(exc)})
        self.queue.add(None)

    def _list_unmanaged(self) -> None:
        found: list[model.Secret] = []
        for name in engine.secret_names(self.cfg):
            found.extend(kube.parse_secret(o) for o in self.client.list_secrets(
                field_selector=f"metadata.name={name}").items)
        self.caches.set_unmanaged(found)

    def reload(self) -> None:
        fingerprint = _fingerprint(self.cfg.path)
        try:
            new = config.load(self.cfg.path)
        except config.ConfigError as exc:
            self._config_fp = fingerprint  # do not retry the same broken content every second
            for line in exc.problems:
                log.error("config rejected; keeping the previous one", extra={"error": line})
            self.metrics.reconcile_errors.labels(reason="config").inc()
            return
        self._config_fp = fingerprint
        if new.backends != self.cfg.backends:
            try:
                fresh = credentials.open_backends(new)
            except config.ConfigError as exc:
                for line in exc.problems:
                    log.error("config rejected; keeping the previous one", extra={"error": line})
                self.metrics.reconcile_errors.labels(reason="config").inc()
                return
            old_backends = self.backends
            self.backends = fresh
            credentials.close_backends(old_backends)
        self.cfg = new
        self.refresher.configure(new, self.backends)
        log.info("config loaded", extra={"object": str(new.path)})
        try:
            self._list_unmanaged()
        except kube.KubeError as exc:
            log.warning("could not list same-named secrets", extra={"error": str(exc)})
        self.queue.add(None)


def main(cfg: config.Config, args: argparse.Namespace, *,
         backends: dict[str, base.Backend]) -> int:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    if args.leader_elect and not (args.leader_election_namespace
                                  or os.environ.get("POD_NAMESPACE")):
        log.error("--leader-elect needs --leader-election-namespace or $POD_NAMESPACE")
        return 2
    try:
        daemon = Daemon(cfg, args, backends=backends, stop=stop)
    except kube.KubeError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1
    except OSError as exc:
        log.error("cannot start", extra={"error": f"{type(exc).__name__}: {exc.strerror}"})
        return 1
    handlers: dict[int, Callable[[int, FrameType | None], None]] = {
        signal.SIGTERM: on_signal, signal.SIGINT: on_signal,
        signal.SIGHUP: lambda s, f: daemon.reload_requested.set(),
    }
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    try:
        daemon._list_unmanaged()
    except kube.KubeError as exc:
        log.warning("could not list same-named secrets", extra={"error": str(exc)})
    daemon.run()
    if received and received[0] == signal.SIGINT:
        return 130
    return 143 if received else 0
