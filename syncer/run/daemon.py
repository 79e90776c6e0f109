"""`pullsecret-syncer run`: keeps every namespace right over time.

Threads, each supervised: three watch caches feed a de-duplicating work queue of namespaces; the
refresher reads credentials when due; one worker turns queued namespaces (or "everything") into
reconcile passes over the caches; housekeeping re-lists everything periodically and re-reads the
config on SIGHUP or when it changes on disk. With leader election only the Lease holder reads
backends and writes. While some mapping has `recyclePods`, the recycler (`recycler`) also
watches Pending Pods and evicts those stuck without our Secret.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from backends import base
from syncer import config
from syncer.core import model, settings
from syncer.credentials import fetch as credentials
from syncer.credentials import publish
from syncer.decide import fight, plan, progress
from syncer.kube import api, errors
from syncer.reconcile import engine, observe
from syncer.run import informer, leader, loops, queue, recycler, refresher
from syncer.telemetry import observability

log = logging.getLogger("syncer.run")

CONFIG_POLL_SECONDS = 1.0
DEBOUNCE_SECONDS = 0.05
MAX_RETRY_DELAY = 60.0
OpenBackends = Callable[[config.Config], dict[str, base.Backend]]


def fingerprint(path: Path) -> str:
    """Content hash of the config file, following symlinks (a ConfigMap's `..data` swap)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


class Daemon:
    def __init__(self, run: settings.RunSettings, cfg: config.Config, *,
                 cluster: api.ClusterAPI, backends: Mapping[str, base.Backend],
                 stop: threading.Event | None = None,
                 metrics: observability.Metrics | None = None,
                 open_backends: OpenBackends = credentials.open_backends,
                 clock: Callable[[], float] = time.monotonic,
                 watch_timeout: int = informer.WATCH_TIMEOUT_SECONDS,
                 poll_interval: float = CONFIG_POLL_SECONDS,
                 progress_interval: float = progress.INTERVAL,
                 fights: fight.Tracker | None = None) -> None:
        self.settings = run
        self.cfg = cfg
        self.cluster = cluster
        self.backends = dict(backends)
        self.stop = stop or threading.Event()
        self.metrics = metrics or observability.Metrics()
        self._open_backends = open_backends
        self._clock = clock
        self._poll_interval = poll_interval
        self.queue = queue.WorkQueue(clock=clock)
        self.ready = threading.Event()
        self.reload_requested = threading.Event()
        self.fights = fights or fight.Tracker()  # who keeps taking our entry out (in memory)
        self.caches = informer.Caches(cluster, on_change=self._changed, stop=self.stop,
                                      watch_timeout=watch_timeout,
                                      on_service_account=self._service_account_revision)
        self.engine = engine.Engine(cluster, metrics=self.metrics, clock=clock,
                                    cache=self.caches, on_planned=self._pass_planned,
                                    on_applied=self._pass_applied, fights=self.fights)
        self._progress_interval = progress_interval
        self._full_pass = False
        self._progress: progress.Periodic | None = None  # of the full pass running now
        self.refresher = refresher.Refresher(
            metrics=self.metrics, on_change=self._on_rotation, stop=self.stop, clock=clock,
            gate=publish.VerifyGate(metrics=self.metrics))
        self.refresher.configure(cfg, self.backends)
        self.recycler = recycler.Recycler(
            cluster, metrics=self.metrics, stop=self.stop, view=self.caches.view,
            credentials=self.refresher.values, leading=self.leading, clock=clock,
            ready=lambda: self.caches.synced() and self.refresher.settled(),
            watch_timeout=watch_timeout)
        self.recycler.configure(cfg)
        self.elector: leader.LeaderElector | None = None
        if run.leader_elect:
            namespace = run.leader_election_namespace or os.environ.get("POD_NAMESPACE", "")
            self.elector = leader.LeaderElector(
                cluster, namespace=namespace, identity=leader.default_identity(),
                on_started=self._started_leading, on_stopped=self._stopped_leading,
                stop=self.stop)
        self.threads: list[threading.Thread] = []
        self._config_fp = fingerprint(cfg.path)
        self._last_resync = clock()
        self._failures = 0

    # ---- state --------------------------------------------------------------------------
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading()

    def healthy(self) -> bool:
        return bool(self.threads) and all(t.is_alive() for t in self.threads)

    def is_ready(self) -> bool:
        return self.ready.is_set() or not self.leading()

    def _changed(self, namespace: str | None) -> None:
        """A watch saw a change in `namespace` (None: maybe everywhere)."""
        self.queue.add(namespace)
        self.recycler.notify(namespace)  # a ServiceAccount may list our Secret now

    def _service_account_revision(self, old: model.ServiceAccount | None,
                                  new: model.ServiceAccount) -> None:
        """A watch delivered a revision: did another writer take our entry out?"""
        found = fight.removal(old, new, instance=self.cfg.instance)
        if found is not None and self.fights.removed(found, self._clock()):
            log.warning("another writer keeps removing our imagePullSecrets entry", extra={
                "namespace": found.namespace, "object": found.name, "kind": "serviceaccount",
                "manager": found.manager})

    def _on_rotation(self, names: set[str]) -> None:
        self.queue.add(None)  # the diff rewrites exactly the Secrets whose content changed
        self.recycler.notify(None)  # a credential may cover more registries now

    def _started_leading(self) -> None:
        self.metrics.is_leader.set(1)
        self.refresher.set_active(True)
        self.queue.add(None)
        self.recycler.notify(None)

    def _stopped_leading(self) -> None:
        self.metrics.is_leader.set(0)
        self.refresher.set_active(False)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start every loop (each supervised); returns at once."""
        self.list_unmanaged()
        bodies: list[tuple[str, Callable[[], None]]] = [
            (f"watch-{inf.kind.name}", inf.run) for inf in self.caches.all]
        bodies += [("refresh", self.refresher.run), ("worker", self._work),
                   ("housekeeping", self._housekeep), ("watch-pods", self.recycler.watch),
                   ("recycle", self.recycler.work)]
        if self.elector is not None:
            self.metrics.is_leader.set(0)
            bodies.append(("leader-election", self.elector.run))
        for name, body in bodies:
            self.threads.append(loops.start(name, body, stop=self.stop, metrics=self.metrics))
        if self.elector is None:
            self._started_leading()

    def run(self) -> None:
        """Serve HTTP, run every loop until `stop` is set, then shut down."""
        http = observability.HttpServer(str(self.settings.http), metrics=self.metrics,
                                        healthy=self.healthy, ready=self.is_ready)
        http.start()
        log.info("starting", extra={"object": str(self.settings.http)})
        try:
            self.start()
            while not self.stop.wait(1.0):  # wake now and then: signal handlers run promptly
                pass
        finally:
            self.shutdown()
            http.stop()

    def shutdown(self) -> None:
        log.info("stopping")
        self.stop.set()
        self.queue.close()  # the worker, waiting for work, stops waiting now
        self.recycler.close()
        self.refresher.close()
        for thread in self.threads:
            if thread.name == "worker":
                thread.join(timeout=8.0)  # the in-flight write finishes, the rest waits
        if self.elector is not None:
            self.elector.release()
        credentials.close_backends(self.backends)
        self.cluster.close()

    # ---- the worker ---------------------------------------------------------------------
    def _work(self) -> None:
        while not self.stop.is_set():
            self.work_once(timeout=1.0)

    def work_once(self, *, timeout: float) -> bool:
        """Take queued work and run one pass over the caches; whether a pass ran."""
        item = self.queue.take(timeout=timeout)
        if item is None:
            return False
        full, namespaces = item
        if not self.leading():
            return False
        if not (self.caches.synced() and self.refresher.settled()):
            self.queue.add_after(0.2, None)  # nothing to compare against yet
            return False
        self.stop.wait(DEBOUNCE_SECONDS)  # let a burst of events collapse into one pass
        more = self.queue.take(timeout=0)
        if more is not None:
            full = full or more[0]
            namespaces |= more[1]
        self._full_pass = full
        try:
            report = self.engine.reconcile(
                self.cfg, self.refresher.values(), self.caches.view(),
                scope=None if full else namespaces,
                proceed=lambda: not self.stop.is_set() and self.leading())
        except BaseException:
            self._pass_ended(stopped=True)
            raise
        self._pass_ended(stopped=report.interrupted)
        for ns, wait in report.held.items():  # contested ServiceAccounts: back when due
            self.queue.add_after(wait, {ns})
        if report.failures and not self.stop.is_set():
            self._failures += 1
            delay = min(MAX_RETRY_DELAY, 2.0 ** self._failures)
            log.warning("pass had failures; retrying", extra={"retry_in": delay})
            self.queue.add_after(delay, None if full else namespaces)
        else:
            self._failures = 0
        if full and not report.interrupted and self.leading():
            self.ready.set()
        return True

    # ---- progress of a long full pass: one log line per interval -------------------------
    def _pass_planned(self, actions: Sequence[plan.Action]) -> None:
        if self._full_pass:
            self._progress = progress.Periodic(
                progress.total_writes(actions), qps=self.settings.kube.qps,
                burst=self.settings.kube.burst, clock=self._clock,
                interval=self._progress_interval)

    def _pass_applied(self, action: plan.Action) -> None:
        if self._progress is not None:
            self._progress.advance(progress.writes_of(action))
            self._log_progress()

    def _log_progress(self) -> None:
        """Called after each write and by housekeeping, so a stalled pass is seen too."""
        current = self._progress
        if current is not None and (snap := current.due()) is not None:
            log.info("full pass in progress", extra=_progress_keys(snap))

    def _pass_ended(self, *, stopped: bool) -> None:
        current, self._progress, self._full_pass = self._progress, None, False
        if current is not None and current.reported:  # a long pass: say how it ended
            log.info("full pass stopped" if stopped else "full pass finished",
                     extra=_progress_keys(current.tracker.snapshot()))

    # ---- resync and config reload ---------------------------------------------------------
    def _housekeep(self) -> None:
        while not self.stop.wait(self._poll_interval):
            self.housekeep_once()

    def housekeep_once(self) -> None:
        self._log_progress()
        hup = self.reload_requested.is_set()
        if hup:  # take it first: a SIGHUP arriving during this reload is kept for the next
            self.reload_requested.clear()
        if hup or fingerprint(self.cfg.path) != self._config_fp:
            self.reload()
            if hup:  # SIGHUP also means: read every credential now
                self.refresher.refresh_all()
        if self._clock() - self._last_resync >= self.settings.resync_interval:
            self.resync()

    def resync(self) -> None:
        """Re-list everything (repairs what a watch missed) and run a full pass."""
        self._last_resync = self._clock()
        try:
            for inf in self.caches.all:
                inf.relist()
            self.list_unmanaged()
        except errors.KubeError as exc:
            log.warning("resync failed", extra={"error": str(exc)})
        self.queue.add(None)
        self.recycler.resync()

    def list_unmanaged(self) -> None:
        try:
            self.caches.set_unmanaged(observe.same_named(self.cluster, self.cfg))
        except errors.KubeError as exc:
            log.warning("could not list same-named secrets", extra={"error": str(exc)})

    def reload(self) -> None:
        """Adopt the config file's new content; any failure keeps the running config."""
        fp = fingerprint(self.cfg.path)
        self._config_fp = fp  # do not retry the same broken content every second
        try:
            new = config.load(self.cfg.path)
            fresh = self._open_backends(new) if new.backends != self.cfg.backends else None
        except config.ConfigError as exc:
            for line in exc.problems:
                log.error("config rejected; keeping the previous one", extra={"error": line})
            self.metrics.reconcile_errors.labels(reason="config").inc()
            return
        except Exception as exc:  # a loader bug must not take the daemon down either
            log.error("config rejected; keeping the previous one",
                      extra={"error": f"{self.cfg.path}: {loops.where(exc)}"})
            self.metrics.reconcile_errors.labels(reason="config").inc()
            return
        if fresh is not None:
            old, self.backends = self.backends, fresh
            credentials.close_backends(old)
        self.cfg = new
        self.refresher.configure(new, self.backends)
        self.recycler.configure(new)
        log.info("config loaded", extra={"object": str(new.path)})
        self.list_unmanaged()
        self.queue.add(None)


def _progress_keys(snap: progress.Snapshot) -> dict[str, object]:
    left = None if snap.left is None else round(snap.left)
    return {"done": snap.done, "total": snap.total, "left_seconds": left}
