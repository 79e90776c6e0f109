"""Carrying out recycling decisions (docs/recycle-pods.md): evictions within the rate limits,
Warning Events for the Pods we never evict (`pull_secret_missing`), and what a refusal means.

- Each Pod is evicted at most once per 10 minutes, at most 10 evictions a minute in all
  (`Limiter`, clock-injected); a decision over the limit waits for a later round.
- A PodDisruptionBudget's refusal (429) is retried a minute later, never forced.
- A Pod that is gone, or replaced by another of its name, is simply dropped.
- 403 (no RBAC grant for pods or pods/eviction) is the caller's to report, once (`Denial`).

`one_shot` is what `plan` and `sync` run after their pass; the daemon's recycler runs `Evictor`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from syncer import config
from syncer.core import dockerconfig, model
from syncer.decide import plan, recycle
from syncer.kube import api, errors
from syncer.reconcile import findings
from syncer.telemetry import observability

log = logging.getLogger("syncer.reconcile")

PER_POD_SECONDS = 600.0  # one eviction per Pod per 10 minutes
PER_WINDOW = 10  # evictions ...
WINDOW_SECONDS = 60.0  # ... per minute, in all
REFUSED_RETRY_SECONDS = 60.0  # a PodDisruptionBudget said no: ask again later
FAILED_RETRY_SECONDS = 30.0  # 5xx, timeouts
FORBIDDEN_RETRY_SECONDS = 300.0  # no RBAC grant: try rarely, in case it is added
FORBIDDEN_REASON = "recycle_forbidden"  # reconcile_errors_total{reason}
MEMORY = 10_000
Key = tuple[str, str]


class Limiter:
    """When a Pod may be evicted: per Pod and overall limits over an injected clock."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 per_pod: float = PER_POD_SECONDS, per_window: int = PER_WINDOW,
                 window: float = WINDOW_SECONDS, memory: int = MEMORY) -> None:
        self._clock = clock
        self._per_pod = per_pod
        self._per_window = per_window
        self._window = window
        self._memory = memory
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()  # when the last evictions were attempted
        self._not_before: dict[Key, float] = {}

    def take(self, key: Key) -> float:
        """Reserve an eviction of `key` now: 0.0 when allowed (it counts against the overall
        limit), else the seconds until it may be asked again."""
        with self._lock:
            now = self._clock()
            while self._recent and now - self._recent[0] >= self._window:
                self._recent.popleft()
            wait = self._not_before.get(key, now) - now
            if len(self._recent) >= self._per_window:
                wait = max(wait, self._recent[0] + self._window - now)
            if wait > 0:
                return wait
            self._recent.append(now)
            return 0.0

    def evicted(self, key: Key) -> None:
        self.retry_after(key, self._per_pod)

    def retry_after(self, key: Key, seconds: float) -> None:
        with self._lock:
            now = self._clock()
            if len(self._not_before) >= self._memory:  # forget what no longer holds anything
                self._not_before = {k: t for k, t in self._not_before.items() if t > now}
            self._not_before[key] = now + seconds


@dataclass(slots=True)
class Outcome:
    """What one round of recycling did; `later` says when to look at a namespace again."""

    evicted: list[recycle.EvictPod] = field(default_factory=list)
    planned: list[recycle.EvictPod] = field(default_factory=list)  # dry run
    refused: list[recycle.EvictPod] = field(default_factory=list)  # by a PodDisruptionBudget
    deferred: list[recycle.EvictPod] = field(default_factory=list)  # over the rate limits
    warned: list[recycle.MissingSecret] = field(default_factory=list)
    later: dict[str, float] = field(default_factory=dict)  # namespace -> seconds
    failures: list[str] = field(default_factory=list)
    forbidden: errors.Forbidden | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.forbidden is None

    def counts(self) -> dict[str, int]:
        return {"evicted": len(self.evicted), "refused": len(self.refused),
                "deferred": len(self.deferred), "warned": len(self.warned)}

    def retry(self, namespace: str, seconds: float) -> None:
        self.later[namespace] = min(self.later.get(namespace, seconds), seconds)


class Evictor:
    def __init__(self, cluster: api.PodEvictor, *, metrics: observability.Metrics,
                 found: findings.Findings, limiter: Limiter) -> None:
        self._cluster = cluster
        self._metrics = metrics
        self._findings = found
        self._limiter = limiter

    def run(self, decisions: Iterable[recycle.EvictPod | recycle.MissingSecret], *,
            dry_run: bool = False, proceed: Callable[[], bool] = lambda: True) -> Outcome:
        """Warn about or evict each decided Pod; stops at a 403 (every other would get one)."""
        out = Outcome()
        for decision in decisions:
            if isinstance(decision, recycle.MissingSecret):
                pull_secret_missing(self._findings, decision, dry_run=dry_run)
                out.warned.append(decision)
            elif dry_run:
                out.planned.append(decision)
            elif not proceed():
                break
            else:
                self._evict(decision, out)
                if out.forbidden is not None:
                    break
        return out

    def _evict(self, e: recycle.EvictPod, out: Outcome) -> None:
        key = (e.namespace, e.name)
        wait = self._limiter.take(key)
        if wait > 0:
            out.deferred.append(e)
            out.retry(e.namespace, wait)
            return
        extra = {"namespace": e.namespace, "object": e.name, "mapping": e.mapping,
                 "kind": "pod", "action": "evict"}
        try:
            self._cluster.evict_pod(e.namespace, e.name, uid=e.observed_uid)
        except errors.TooManyRequests as exc:
            self._limiter.retry_after(key, REFUSED_RETRY_SECONDS)
            out.refused.append(e)
            out.retry(e.namespace, REFUSED_RETRY_SECONDS)
            if self._findings.fresh(model.ObjectRef("Pod", *key, e.observed_uid),
                                    "EvictionRefused"):
                log.warning("eviction refused by a PodDisruptionBudget; will ask again, never "
                            "force", extra={**extra, "error": str(exc)})
        except (errors.NotFound, errors.Conflict):
            return  # gone, or another Pod of that name by now: nothing left to do
        except errors.Forbidden as exc:
            self._limiter.retry_after(key, FORBIDDEN_RETRY_SECONDS)
            out.forbidden = exc
        except errors.KubeError as exc:
            self._limiter.retry_after(key, FAILED_RETRY_SECONDS)
            out.failures.append(str(exc))
            out.retry(e.namespace, FAILED_RETRY_SECONDS)
            self._metrics.reconcile_errors.labels(reason="kube_write").inc()
            log.warning("eviction failed; will retry", extra={**extra, "error": str(exc)})
        else:
            self._limiter.evicted(key)
            self._metrics.pods_recycled.labels(mapping=e.mapping).inc()
            out.evicted.append(e)
            log.info(str(e), extra=extra)


def pull_secret_missing(found: findings.Findings, m: recycle.MissingSecret, *,
                        dry_run: bool) -> None:
    """A stuck Pod we do not evict (no controller, its own imagePullSecrets, or a Job's): a
    Warning Event that says why and what to do instead, hourly."""
    extra = {"namespace": m.namespace, "object": m.name, "mapping": m.mapping, "kind": "pod"}
    if m.why == "no-controller":
        msg = "pod cannot pull its image without the secret and has no controller; not evicted"
        message = (f"this pod was created before serviceaccount {m.service_account!r} listed "
                   f"secret {m.secret_name!r} (mapping {m.mapping!r}) and cannot pull its "
                   "image; it has no controller, so pullsecret-syncer never deletes it: "
                   "recreate it to pick up the secret")
    elif m.why == "job":
        msg = "pod of a job cannot pull its image without the secret; not evicted"
        message = (f"this pod was created before serviceaccount {m.service_account!r} listed "
                   f"secret {m.secret_name!r} (mapping {m.mapping!r}) and cannot pull its "
                   "image; it belongs to a Job, whose backoffLimit counts an evicted pod as "
                   "a failure, so pullsecret-syncer does not evict it: delete it if the Job "
                   "can afford one more failure (its next pod gets the secret)")
    else:
        msg = "pod cannot pull its image without the secret and names its own; not evicted"
        message = (f"this pod names its own imagePullSecrets, so a recreated pod would not get "
                   f"secret {m.secret_name!r} from serviceaccount {m.service_account!r} "
                   f"(mapping {m.mapping!r}) either: add it to the pod template")
    found.warn(model.ObjectRef("Pod", m.namespace, m.name, m.uid), reason=recycle.EVENT_REASON,
               message=message, msg=msg, extra=extra, dry_run=dry_run)


class Denial:
    """No RBAC grant to `what` (`read pods`, `evict pods`): one clear error line when it starts
    (not one per retry), a metric per refused attempt, and a line once it is granted."""

    def __init__(self, metrics: observability.Metrics, *, what: str) -> None:
        self._metrics = metrics
        self._what = what
        self.active = False

    def denied(self, exc: errors.Forbidden) -> None:
        self._metrics.reconcile_errors.labels(reason=FORBIDDEN_REASON).inc()
        if not self.active:
            self.active = True
            log.error(f"recyclePods is on but not allowed to {self._what} (403): add the "
                      "recycle-pods RBAC component; everything else keeps working; retrying "
                      "every 5 minutes", extra={"error": str(exc), "kind": "pod"})

    def allowed(self) -> None:
        if self.active:
            self.active = False
            log.info(f"recyclePods: allowed to {self._what} now", extra={"kind": "pod"})


def one_shot(cluster: api.PodRecycling, cfg: config.Config,
             credentials: Mapping[str, dockerconfig.Auths], view: model.ClusterView,
             done: Iterable[plan.Action], *, metrics: observability.Metrics,
             found: findings.Findings, dry_run: bool) -> Outcome:
    """`plan`/`sync`: decide over the Pending Pods against `view` as the pass's `done` actions
    left it, and evict (or, dry run, list) within one round of the rate limits."""
    out = Outcome()
    if not recycle.enabled(cfg):
        return out
    try:
        pods = cluster.list(api.PODS, selector=api.PENDING).items
    except errors.Forbidden as exc:
        metrics.reconcile_errors.labels(reason=FORBIDDEN_REASON).inc()
        out.forbidden = exc
        return out
    except errors.KubeError as exc:
        out.failures.append(str(exc))
        return out
    where = recycle.scene(cfg, credentials, recycle.project(view, done))
    evictor = Evictor(cluster, metrics=metrics, found=found, limiter=Limiter())
    return evictor.run(recycle.decide_all(pods, where), dry_run=dry_run)
