"""What a pass reports besides its writes: conflicts, blocked Secrets, failed writes, replaced
Secrets — as a log line, a metric and a Warning Event on the object concerned (`warn` is that
for a finding of another room, e.g. recycling's Pods that are never evicted).

The same finding about the same object is reported at most once an hour: a daemon that passes
over a conflicted namespace on every event must not flood the log, the metric or the Events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from syncer.core import model
from syncer.decide import desired, fight, plan
from syncer.kube import api, errors
from syncer.telemetry import observability

log = logging.getLogger("syncer.reconcile")

REPEAT_SECONDS = 3600.0  # the same finding about the same object at most hourly
MEMORY = 10_000  # remembered findings before the expired ones are forgotten


class Findings:
    def __init__(self, cluster: api.EventRecorder, *, metrics: observability.Metrics,
                 clock: Callable[[], float] = time.monotonic,
                 repeat_seconds: float = REPEAT_SECONDS, memory: int = MEMORY) -> None:
        self._cluster = cluster
        self._metrics = metrics
        self._clock = clock
        self._repeat = repeat_seconds
        self._memory = memory
        self._seen: dict[tuple[str, str, str, str], float] = {}

    def fresh(self, ref: model.ObjectRef, reason: str) -> bool:
        """Whether `reason` about `ref` was not reported within the hour (and note it now)."""
        key = (ref.kind, ref.namespace, ref.name, reason)
        now = self._clock()
        if len(self._seen) >= self._memory:  # a long-running daemon forgets what may repeat
            self._seen = {k: t for k, t in self._seen.items() if now - t < self._repeat}
        last = self._seen.get(key)
        if last is not None and now - last < self._repeat:
            return False
        self._seen[key] = now
        return True

    def remembered(self) -> int:
        return len(self._seen)

    def _conflict(self, conflict_kind: str, ref: model.ObjectRef, *, reason: str, message: str,
                  level: int, msg: str, extra: dict[str, str], dry_run: bool) -> None:
        if dry_run:
            log.log(level, msg, extra=extra)
            return
        if not self.fresh(ref, reason):
            return
        log.log(level, msg, extra=extra)
        self._metrics.conflicts.labels(kind=conflict_kind).inc()
        self._cluster.record_event(ref, reason=reason, message=message)

    def secret_conflict(self, sc: plan.SecretConflict, *, dry_run: bool) -> None:
        self._conflict(
            "secret", model.ObjectRef("Secret", sc.namespace, sc.name, sc.uid),
            reason="SecretConflict", level=logging.ERROR, dry_run=dry_run,
            msg="secret exists and is not managed by pullsecret-syncer; leaving it alone",
            extra={"namespace": sc.namespace, "object": sc.name, "mapping": sc.mapping},
            message=f"secret {sc.name!r} is not managed by pullsecret-syncer (no "
                    f"{model.MANAGED_BY_LABEL} label); mapping {sc.mapping!r} skipped this "
                    "namespace. " + (
                        "adoptExisting cannot take it over: it is immutable: true, so its data "
                        "cannot change. Delete it." if sc.immutable else
                        "Delete it or set adoptExisting: true."))

    def mapping_conflict(self, mc: desired.MappingConflict,
                         namespaces: Mapping[str, model.Namespace], *, dry_run: bool) -> None:
        ns = namespaces.get(mc.namespace)
        self._conflict(
            "mapping", model.ObjectRef("Namespace", "", mc.namespace, ns.uid if ns else ""),
            reason="MappingConflict", level=logging.WARNING, dry_run=dry_run,
            msg="two mappings select the same secret; the first in the file wins",
            extra={"namespace": mc.namespace, "mapping": mc.loser, "object": mc.secret_name},
            message=f"mappings {mc.winner!r} and {mc.loser!r} both manage secret "
                    f"{mc.secret_name!r}; {mc.winner!r} wins (first in file)")

    def blocked(self, b: plan.Blocked, *, dry_run: bool) -> None:
        log.warning("secret not written: credential has no good value yet",
                    extra={"namespace": b.namespace, "object": b.name, "mapping": b.mapping,
                           "credential": ",".join(b.missing)})
        if not dry_run:
            self._metrics.reconcile_errors.labels(reason="credential_unavailable").inc()

    def shadowed(self, mapping: str, credential: str, registry: str) -> None:
        log.warning("registry provided by an earlier credential; ignoring this one",
                    extra={"mapping": mapping, "credential": credential, "object": registry})

    def write_failed(self, action: plan.Action, exc: errors.KubeError) -> None:
        """A Warning Event on the object as the pass observed it (its uid, so that `kubectl
        events --for` and, for a ServiceAccount, `kubectl describe` show it)."""
        ns, name = action.namespace, action.name
        self._metrics.reconcile_errors.labels(reason="kube_write").inc()
        log.error("write failed", extra={"namespace": ns, "object": name, "kind": action.kind,
                                         "action": action.verb, "mapping": action.mapping,
                                         "error": str(exc)})
        kind = "Secret" if action.kind == "secret" else "ServiceAccount"
        ref = model.ObjectRef(kind, ns, name, action.observed_uid)
        if self.fresh(ref, "WriteFailed"):
            self._cluster.record_event(
                ref, reason="WriteFailed",
                message=f"pullsecret-syncer could not {action.verb} this {action.kind}: "
                        f"{exc.reason or exc.status or 'error'}")

    def secret_replaced(self, action: plan.ReplaceSecret, *, new_uid: str) -> None:
        log.warning("secret could not be changed in place; replaced it",
                    extra={"namespace": action.namespace, "object": action.name,
                           "mapping": action.mapping,
                           "error": "immutable: true" if action.why == "immutable"
                           else "wrong type"})
        cause = ("someone set immutable: true on it" if action.why == "immutable"
                 else f"its type was not {model.SECRET_TYPE}")
        self._cluster.record_event(
            model.ObjectRef("Secret", action.namespace, action.name, new_uid),
            reason="SecretReplaced",
            message=f"pullsecret-syncer deleted and re-created this secret: {cause}")

    def contested(self, c: fight.Contested, *, mapping: str, uid: str) -> None:
        """A ServiceAccount whose entry another writer keeps removing: hourly, a Warning Event
        on it and a log line, both naming that writer and the fix."""
        ref = model.ObjectRef("ServiceAccount", c.namespace, c.name, uid)
        if not self.fresh(ref, fight.EVENT_REASON):
            return
        text = fight.message(c.manager, c.entries, c.backoff)
        log.warning("imagePullSecrets contested by another writer; restoring with back-off",
                    extra={"namespace": c.namespace, "object": c.name, "mapping": mapping,
                           "kind": "serviceaccount", "manager": c.manager, "error": text})
        self._cluster.record_event(ref, reason=fight.EVENT_REASON, message=text)

    def warn(self, ref: model.ObjectRef, *, reason: str, message: str, msg: str,
             extra: dict[str, str], dry_run: bool) -> None:
        """A finding about one object: a log line and a Warning Event (hourly per object and
        reason); a dry run only logs, every time."""
        if not dry_run and not self.fresh(ref, reason):
            return
        log.warning(msg, extra=extra)
        if not dry_run:
            self._cluster.record_event(ref, reason=reason, message=message)
