"""The daemon's Pod recycling (docs/recycle-pods.md): a watch cache of Pending Pods that runs
only while some mapping enables it, and a loop that decides again whenever a Pod, a
ServiceAccount, a Secret or a credential changes.

Two supervised threads: `watch-pods` lists and watches Pods with the field selector
`status.phase=Pending` (idle while no mapping recycles; a disabled watch ends within a minute and
its cache is dropped), and `recycle` turns queued namespaces into decisions over the caches and
evictions within the rate limits. Only the leader evicts. Without the RBAC grant (403) the
watch logs one error, counts `reconcile_errors_total{reason="recycle_forbidden"}`, and tries
again every 5 minutes — or at once after a config reload (SIGHUP) — while the rest of the daemon
goes on as if recycling were off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from syncer import config
from syncer.core import dockerconfig, model
from syncer.decide import recycle
from syncer.kube import api, errors
from syncer.reconcile import evict, findings
from syncer.run import informer, queue
from syncer.telemetry import observability

log = logging.getLogger("syncer.run")

POD_WATCH_SECONDS = 60  # short watches, so that a watch no mapping needs ends soon
SETTLE_SECONDS = 0.5  # the daemon's caches or credentials are not there yet: look again
DEBOUNCE_SECONDS = 0.25  # evictions are not urgent; Pod events come in bursts


class Recycler:
    def __init__(self, cluster: api.PodRecyclingLoop, *, metrics: observability.Metrics,
                 stop: threading.Event, view: Callable[[], model.ClusterView],
                 credentials: Callable[[], Mapping[str, dockerconfig.Auths]],
                 ready: Callable[[], bool], leading: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic,
                 watch_timeout: int = informer.WATCH_TIMEOUT_SECONDS,
                 forbidden_retry: float = evict.FORBIDDEN_RETRY_SECONDS) -> None:
        self._cluster = cluster
        self._stop = stop
        self._view = view
        self._credentials = credentials
        self._ready = ready
        self._leading = leading
        self._clock = clock
        self._watch_timeout = min(watch_timeout, POD_WATCH_SECONDS)
        self._forbidden_retry = forbidden_retry
        self.queue = queue.WorkQueue(clock=clock)
        self.read_denied = evict.Denial(metrics, what="read pods")
        self.evict_denied = evict.Denial(metrics, what="evict pods")
        self._evictor = evict.Evictor(
            cluster, metrics=metrics, limiter=evict.Limiter(clock=clock),
            found=findings.Findings(cluster, metrics=metrics, clock=clock))
        self._cfg: config.Config | None = None
        self._evict_blocked_until = 0.0  # after a 403 on eviction: ask again rarely
        self._wake = threading.Event()
        self.pods: informer.Informer[model.Pod] | None = None  # None while not watching

    # ---- configuration and triggers -----------------------------------------------------------
    def configure(self, cfg: config.Config) -> None:
        """Adopt a (new) config: start or stop watching; a refused list is retried now."""
        self._cfg = cfg
        if not self.enabled():
            self.pods = None
        self._evict_blocked_until = 0.0
        self._wake.set()
        self.notify(None)

    def close(self) -> None:
        """Shutdown: both threads stop waiting now."""
        self.queue.close()
        self._wake.set()

    def enabled(self) -> bool:
        return self._cfg is not None and recycle.enabled(self._cfg)

    def notify(self, namespace: str | None) -> None:
        """Something in `namespace` (None: anywhere) changed: decide about its Pods again."""
        if self.enabled():
            self.queue.add(namespace)

    def resync(self) -> None:
        """The periodic re-list (repairs what the watch missed)."""
        pods = self.pods
        if pods is None:
            return
        try:
            pods.relist()
        except errors.KubeError as exc:
            log.warning("resync of pods failed", extra={"kind": "pods", "error": str(exc)})
        self.notify(None)

    # ---- the `watch-pods` thread --------------------------------------------------------------
    def watch(self) -> None:
        while not self._stop.is_set():
            if not self.enabled():
                self._wake.clear()
                if not self._stop.is_set():  # a shutdown that woke us just before counts
                    self._wake.wait(1.0)
                continue
            self.watch_session()

    def watch_session(self) -> None:
        """List and watch Pending Pods until no mapping needs them (or shutdown)."""
        pods = informer.Informer(self._cluster, api.PODS, selector=api.PENDING,
                                 on_change=self.notify, stop=self._stop,
                                 watch_timeout=self._watch_timeout)
        need_list = True
        try:
            while not self._stop.is_set() and self.enabled():
                try:
                    if need_list:
                        self._wake.clear()
                        pods.relist()
                        need_list = False
                        self.read_denied.allowed()
                        self.pods = pods
                        self.notify(None)
                    pods.watch_once()
                except errors.Forbidden as exc:
                    self.pods, need_list = None, True
                    self.read_denied.denied(exc)
                    self._pause(self._forbidden_retry)
                except errors.Gone:
                    need_list = True
                except errors.KubeError as exc:
                    delay = pods.backoff()
                    log.warning("watch failed; reconnecting", extra={
                        "kind": "pods", "error": str(exc), "retry_in": round(delay, 2)})
                    self._pause(delay)
                    need_list = need_list or not pods.resource_version()
        finally:
            self.pods = None

    def _pause(self, seconds: float) -> None:
        """Wait `seconds`, cut short by shutdown or a config change."""
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0 or self._wake.wait(min(left, 1.0)):
                return

    # ---- the `recycle` thread -----------------------------------------------------------------
    def work(self) -> None:
        while not self._stop.is_set():
            self.work_once(timeout=1.0)

    def work_once(self, *, timeout: float) -> bool:
        """Take queued namespaces and decide about their Pending Pods; whether it did."""
        item = self.queue.take(timeout=timeout)
        pods, cfg = self.pods, self._cfg
        if item is None or pods is None or cfg is None or not self.enabled():
            return False  # not watching: the watch queues everything once it has listed
        if not self._leading():
            return False  # becoming leader queues everything
        full, namespaces = item
        if not self._ready():
            self.queue.add_after(SETTLE_SECONDS, None if full else namespaces)
            return False
        self._stop.wait(DEBOUNCE_SECONDS)  # let a burst of events collapse into one round
        more = self.queue.take(timeout=0)
        if more is not None:
            full, namespaces = full or more[0], namespaces | more[1]
        if self.pods is not pods or self._cfg is not cfg:  # reconfigured meanwhile
            self.notify(None)
            return False
        candidates = [p for p in pods.items().values()  # cheap test first: most Pending Pods
                      if (full or p.namespace in namespaces) and recycle.pulling(p)]  # are fine
        if not candidates:
            return True
        scope = None if full else namespaces
        where = recycle.scene(cfg, self._credentials(), self._view(), scope=scope)
        decisions = recycle.decide_all(candidates, where)
        blocked = self._evict_blocked_until - self._clock()
        if blocked > 0 and any(d.evicts for d in decisions):
            decisions = [d for d in decisions if not d.evicts]
            self.queue.add_after(blocked, scope)
        out = self._evictor.run(decisions,
                                proceed=lambda: not self._stop.is_set() and self._leading())
        if out.forbidden is not None:
            self.evict_denied.denied(out.forbidden)
            self._evict_blocked_until = self._clock() + self._forbidden_retry
            self.queue.add_after(self._forbidden_retry, scope)
        elif out.evicted or out.refused:
            self.evict_denied.allowed()
        for namespace, delay in out.later.items():
            self.queue.add_after(delay, {namespace})
        return True
