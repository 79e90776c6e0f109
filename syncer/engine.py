"""One reconcile pass: observe the cluster, compute desired state, diff, apply the differences.

`Engine.reconcile` works on any cluster view — fresh lists for `sync`/`plan`, watch caches for
`run` — and on all namespaces or a few. Writes are applied in the plan's safe order; a write
that loses a race (409, failed precondition) is re-read and recomputed, never forced.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from syncer import config, desired, dockerconfig, kube, model, observability, plan

log = logging.getLogger(__name__)

RACE_RETRIES = 8  # re-read-and-retry rounds for one object that keeps changing under us
EVENT_REPEAT_SECONDS = 3600.0  # the same Warning Event on the same object at most hourly


class SecretTaken(kube.KubeError):
    """A create lost the race to someone else's same-named Secret (already reported)."""


@dataclass(slots=True)
class Report:
    """What one pass did and what went wrong; `ok` is the `sync` exit status."""

    applied: list[plan.Action] = field(default_factory=list)
    planned: list[plan.Action] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    conflicts: list[plan.SecretConflict] = field(default_factory=list)
    blocked: list[plan.Blocked] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not (self.failures or self.conflicts or self.blocked)


def secret_names(cfg: config.Config) -> list[str]:
    return sorted({m.secret_name for m in cfg.mappings})


def observe(client: kube.Kube, cfg: config.Config) -> model.ClusterView:
    """Read the cluster with a constant number of list calls (no per-namespace GET)."""
    namespaces = {
        ns.name: ns for ns in map(kube.parse_namespace, client.list_namespaces().items)
    }
    secrets: dict[tuple[str, str], model.Secret] = {}
    selector = f"{model.MANAGED_BY_LABEL}={model.MANAGED_BY_VALUE}"
    for obj in client.list_secrets(label_selector=selector).items:
        s = kube.parse_secret(obj)
        secrets[(s.namespace, s.name)] = s
    for name in secret_names(cfg):  # also finds same-named Secrets we do not manage
        for obj in client.list_secrets(field_selector=f"metadata.name={name}").items:
            s = kube.parse_secret(obj)
            secrets.setdefault((s.namespace, s.name), s)
    accounts: dict[str, dict[str, model.ServiceAccount]] = {}
    for obj in client.list_service_accounts().items:
        sa = kube.parse_service_account(obj)
        accounts.setdefault(sa.namespace, {})[sa.name] = sa
    return model.ClusterView(namespaces, secrets, accounts)


class Engine:
    """Applies plans to one cluster and reports conflicts, failures and blocked Secrets."""

    def __init__(self, client: kube.Kube | None, *, metrics: observability.Metrics,
                 clock: Callable[[], float] = time.monotonic,
                 note_secret: Callable[[model.Secret | None, tuple[str, str]], None] | None = None,
                 note_service_account: Callable[[model.ServiceAccount], None] | None = None,
                 ) -> None:
        self.client = client
        self.metrics = metrics
        self._clock = clock
        self._events: dict[tuple[str, str, str, str], float] = {}
        # Write-through hooks: the daemon's caches learn our writes before the watch echoes them.
        self._note_secret = note_secret or (lambda secret, key: None)
        self._note_sa = note_service_account or (lambda sa: None)

    def reconcile(self, cfg: config.Config, credentials: Mapping[str, dockerconfig.Auths],
                  view: model.ClusterView, *, dry_run: bool = False,
                  scope: Iterable[str] | None = None,
                  proceed: Callable[[], bool] = lambda: True) -> Report:
        """One pass over `view`. `proceed` is asked before every write; when it says no
        (shutting down, leadership lost) the rest of the pass is left for later."""
        want = desired.compute(cfg, credentials, view.namespaces.values(), scope=scope)
        the_plan = plan.diff(cfg, want, view)
        report = Report(planned=list(the_plan.actions), conflicts=list(the_plan.conflicts),
                        blocked=list(the_plan.blocked))
        self._report_findings(want, the_plan, view, dry_run=dry_run)
        if not dry_run:
            self._apply(cfg, want, view, the_plan.actions, report, proceed)
        if not dry_run:  # the view holds every managed Secret, whatever the scope
            self._count_managed(cfg, view, report)
        return report

    # ---- findings -------------------------------------------------------------------------
    def _report_findings(self, want: desired.Desired, the_plan: plan.Plan,
                         view: model.ClusterView, *,
                         dry_run: bool) -> None:
        for name, rendered in want.rendered.items():
            for cred, registry in rendered.shadowed:
                log.warning("registry provided by an earlier credential; ignoring this one",
                            extra={"mapping": name, "credential": cred, "object": registry})
        for mc in want.conflicts:
            self._conflict(
                "mapping", dry_run=dry_run, level=logging.WARNING,
                msg="two mappings select the same secret; the first in the file wins",
                extra={"namespace": mc.namespace, "mapping": mc.loser, "object": mc.secret_name},
                uid=view.namespaces[mc.namespace].uid if mc.namespace in view.namespaces else "",
                event=("Namespace", mc.namespace, mc.namespace, "MappingConflict",
                       f"mappings {mc.winner!r} and {mc.loser!r} both manage secret "
                       f"{mc.secret_name!r}; {mc.winner!r} wins (first in file)"))
        for sc in the_plan.conflicts:
            self._secret_conflict(sc, dry_run=dry_run)
        for b in the_plan.blocked:
            log.warning("secret not written: credential has no good value yet",
                        extra={"namespace": b.namespace, "object": b.name, "mapping": b.mapping,
                               "credential": ",".join(b.missing)})
            if not dry_run:
                self.metrics.reconcile_errors.labels(reason="credential_unavailable").inc()

    def _secret_conflict(self, sc: plan.SecretConflict, *, dry_run: bool) -> None:
        self._conflict(
            "secret", dry_run=dry_run, level=logging.ERROR, uid=sc.uid,
            msg="secret exists and is not managed by pullsecret-syncer; leaving it alone",
            extra={"namespace": sc.namespace, "object": sc.name, "mapping": sc.mapping},
            event=("Secret", sc.namespace, sc.name, "SecretConflict",
                   f"secret {sc.name!r} is not managed by pullsecret-syncer (no "
                   f"{model.MANAGED_BY_LABEL} label); mapping {sc.mapping!r} skipped "
                   "this namespace. Delete it or set adoptExisting: true."))

    def _conflict(self, conflict_kind: str, *, dry_run: bool, level: int, uid: str, msg: str,
                  extra: dict[str, str], event: tuple[str, str, str, str, str]) -> None:
        """Log, count and record a conflict — once an hour per object, not on every pass."""
        kind, namespace, name, reason, message = event
        if dry_run:
            log.log(level, msg, extra=extra)
            return
        if not self._fresh(kind, namespace, name, reason):
            return
        log.log(level, msg, extra=extra)
        self.metrics.conflicts.labels(kind=conflict_kind).inc()
        if self.client is not None:
            self.client.create_event(kind=kind, namespace=namespace, name=name, uid=uid,
                                     reason=reason, message=message)

    def _fresh(self, kind: str, namespace: str, name: str, reason: str) -> bool:
        """Whether this finding was not reported within the last hour (and note it now)."""
        key = (kind, namespace, name, reason)
        now = self._clock()
        if len(self._events) > 10_000:  # a long-running daemon forgets what it may repeat
            self._events = {k: t for k, t in self._events.items()
                            if now - t < EVENT_REPEAT_SECONDS}
        last = self._events.get(key)
        if last is not None and now - last < EVENT_REPEAT_SECONDS:
            return False
        self._events[key] = now
        return True

    def _count_managed(self, cfg: config.Config, view: model.ClusterView,
                       report: Report) -> None:
        present = {k for k, s in view.secrets.items() if s.managed}
        mapping_of = {k: s.annotations.get(model.MAPPING_ANNOTATION, "")
                      for k, s in view.secrets.items() if s.managed}
        for act in report.applied:
            if act.kind != "secret":
                continue
            key = (act.namespace, act.name)
            if act.action == "delete":
                present.discard(key)
            else:
                present.add(key)
                mapping_of[key] = act.mapping or ""
        counts = Tally(mapping_of[k] for k in present)
        for mapping in cfg.mappings:
            self.metrics.managed_secrets.labels(mapping=mapping.name).set(counts[mapping.name])

    # ---- writes ---------------------------------------------------------------------------
    def _apply(self, cfg: config.Config, want: desired.Desired, view: model.ClusterView,
               actions: Iterable[plan.Action], report: Report,
               proceed: Callable[[], bool]) -> None:
        assert self.client is not None  # noqa: S101 - a dry run never gets here
        failed_secrets: set[tuple[str, str]] = set()
        gone_namespaces: set[str] = set()
        for action in actions:
            if not proceed():
                report.interrupted = True
                return
            if action.namespace in gone_namespaces:
                continue
            try:
                if action.kind == "secret":
                    self._apply_secret(cfg, want, action, report)
                else:
                    add = tuple(n for n in action.add
                                if (action.namespace, n) not in failed_secrets)
                    if add or action.remove:
                        observed = view.service_accounts.get(action.namespace, {}).get(
                            action.name)
                        self._apply_service_account(action, add, observed, report)
            except kube.NotFound as exc:  # vanished mid-pass: dropped silently
                if isinstance(exc, kube.NamespaceTerminating) or (
                        action.kind == "secret" and action.action == "create"):
                    gone_namespaces.add(action.namespace)
            except SecretTaken:  # reported as a conflict; its SAs must not point at it
                failed_secrets.add((action.namespace, action.name))
            except kube.KubeError as exc:
                if action.kind == "secret":
                    failed_secrets.add((action.namespace, action.name))
                self._write_failed(action, exc, report, view)

    def _write_failed(self, action: plan.Action, exc: kube.KubeError, report: Report,
                      view: model.ClusterView) -> None:
        report.failures.append(str(exc))
        self.metrics.reconcile_errors.labels(reason="kube_write").inc()
        log.error("write failed", extra={"namespace": action.namespace, "object": action.name,
                                         "kind": action.kind, "action": action.action,
                                         "mapping": action.mapping, "error": str(exc)})
        kind = "Secret" if action.kind == "secret" else "ServiceAccount"
        if self.client is not None and self._fresh(kind, action.namespace, action.name,
                                                   "WriteFailed"):
            self.client.create_event(
                kind=kind, namespace=action.namespace, name=action.name,
                uid=_observed_uid(view, action),
                reason="WriteFailed",
                message=f"pullsecret-syncer could not {action.action} this {action.kind}: "
                        f"{exc.reason or exc.status or 'error'}")

    def _done(self, action: plan.Action, report: Report) -> None:
        report.applied.append(action)
        log.info(action.describe(), extra={"namespace": action.namespace, "object": action.name,
                                           "kind": action.kind, "action": action.action,
                                           "mapping": action.mapping})

    def _apply_secret(self, cfg: config.Config, want: desired.Desired, action: plan.Action,
                      report: Report) -> None:
        client = self.client
        assert client is not None  # noqa: S101
        current = action
        for _ in range(RACE_RETRIES):
            try:
                key = (current.namespace, current.name)
                if current.action == "create":
                    assert current.data is not None and current.mapping  # noqa: S101
                    self._note_secret(client.create_secret(
                        *key, data=current.data, mapping=current.mapping,
                        credentials=current.credentials), key)
                elif current.action == "update":
                    assert current.data is not None and current.mapping  # noqa: S101
                    self._note_secret(client.update_secret(
                        *key, data=current.data, mapping=current.mapping,
                        credentials=current.credentials,
                        resource_version=current.resource_version or "",
                        drop_keys=current.drop_keys), key)
                else:
                    client.delete_secret(*key, resource_version=current.resource_version or "")
                    self._note_secret(None, key)
                self._done(current, report)
                return
            except kube.Conflict:
                nxt = self._recompute_secret(cfg, want, current, report)
                if nxt is None:
                    return
                current = nxt
        raise kube.Conflict(f"secret {action.namespace}/{action.name}: kept changing; will retry")

    def _recompute_secret(self, cfg: config.Config, want: desired.Desired,
                          action: plan.Action, report: Report) -> plan.Action | None:
        """After a lost race: read the Secret again and decide afresh (None: nothing to do)."""
        assert self.client is not None  # noqa: S101
        key = (action.namespace, action.name)
        try:
            fresh: model.Secret | None = self.client.get_secret(*key)
        except kube.NotFound:
            fresh = None
        self._note_secret(fresh, key)
        target = want.targets.get(key)
        if target is None:  # a prune: delete only what is still ours
            if fresh is None or not fresh.managed:
                return None
            return plan.Action("delete", "secret", *key, resource_version=fresh.resource_version)
        conflicts: list[plan.SecretConflict] = []
        blocked: list[plan.Blocked] = []
        acts, _ = plan.secret_actions(target, fresh, conflicts, blocked)
        report.conflicts.extend(conflicts)
        report.blocked.extend(blocked)
        for sc in conflicts:
            self._secret_conflict(sc, dry_run=False)
        if conflicts:
            raise SecretTaken(f"secret {action.namespace}/{action.name}: taken by a Secret we "
                              "do not manage", reason="SecretConflict")
        return acts[0] if acts else None

    def _apply_service_account(self, action: plan.Action, add: tuple[str, ...],
                               observed: model.ServiceAccount | None, report: Report) -> None:
        """Patch with a resourceVersion test; on a lost race re-read and recompute, so a
        concurrent writer's entries (e.g. the token controller's) are never dropped."""
        client = self.client
        assert client is not None  # noqa: S101
        sa = observed
        for _ in range(RACE_RETRIES):
            if sa is None:
                try:
                    sa = client.get_service_account(action.namespace, action.name)
                except kube.NotFound:
                    return  # the ServiceAccount was deleted meanwhile
                self._note_sa(sa)
            ops = plan.service_account_patch(sa, add=add, remove=action.remove)
            if ops is None:
                return
            try:
                self._note_sa(client.patch_service_account(action.namespace, action.name, ops))
            except kube.Conflict:
                sa = None
                continue
            except kube.NotFound:
                return
            self._done(action, report)
            return
        raise kube.Conflict(f"serviceaccount {action.namespace}/{action.name}: kept changing")


def _observed_uid(view: model.ClusterView, action: plan.Action) -> str:
    """The uid of the object a failed write was about (empty when it does not exist yet), so
    that `kubectl describe` shows its Warning Event."""
    if action.kind == "secret":
        secret = view.secrets.get((action.namespace, action.name))
        return secret.uid if secret is not None else ""
    sa = view.service_accounts.get(action.namespace, {}).get(action.name)
    return sa.uid if sa is not None else ""
