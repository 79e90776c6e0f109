"""One reconcile pass over a cluster view: desired state, diff, apply, report.

`Engine.reconcile` works on any view — fresh lists for `sync`/`plan`, watch caches for `run` — and
on all namespaces or a few. Writes are applied in the plan's safe order; dry-run is one flag.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from syncer import config
from syncer.core import dockerconfig, model
from syncer.decide import desired, fight, plan
from syncer.kube import api, errors
from syncer.reconcile import apply, findings
from syncer.telemetry import observability

log = logging.getLogger("syncer.reconcile")


@dataclass(slots=True)
class Report:
    """What one pass did and what went wrong; `ok` is the `sync` exit status."""

    applied: list[plan.Action] = field(default_factory=list)
    planned: list[plan.Action] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    conflicts: list[plan.SecretConflict] = field(default_factory=list)
    blocked: list[plan.Blocked] = field(default_factory=list)
    interrupted: bool = False
    held: dict[str, float] = field(default_factory=dict)  # namespace -> seconds: come back then

    @property
    def ok(self) -> bool:
        return not (self.failures or self.conflicts or self.blocked)


class Engine:
    """Applies plans to one cluster and reports conflicts, failures and blocked Secrets."""

    def __init__(self, cluster: api.PassTarget, *, metrics: observability.Metrics,
                 clock: Callable[[], float] = time.monotonic,
                 cache: apply.Cache | None = None,
                 on_applied: Callable[[plan.Action], None] | None = None,
                 on_planned: Callable[[Sequence[plan.Action]], None] | None = None,
                 fights: fight.Tracker | None = None) -> None:
        self.metrics = metrics
        self._clock = clock
        self._fights = fights  # the daemon's: restores on contested ServiceAccounts back off
        self.findings = findings.Findings(cluster, metrics=metrics, clock=clock)
        self._applier = apply.Applier(cluster, metrics=metrics, cache=cache or apply.NoCache(),
                                      on_replaced=self._replaced)
        self._on_applied = on_applied or (lambda action: None)
        self._on_planned = on_planned or (lambda actions: None)  # before a pass's first write

    def _replaced(self, action: plan.ReplaceSecret, uid: str) -> None:
        self.findings.secret_replaced(action, new_uid=uid)

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
            self._on_planned(the_plan.actions)
            self._apply(want, the_plan.actions, report, proceed)
            self._count_managed(cfg, view, report)  # the view holds every managed Secret
            self._report_fights(cfg, view)
        return report

    def _report_fights(self, cfg: config.Config, view: model.ClusterView) -> None:
        """Contested ServiceAccounts: a Warning Event and a log line (hourly), and the gauge."""
        if self._fights is None:
            return
        found = [(c, next((s.annotations.get(model.MAPPING_ANNOTATION, "") for n in c.entries
                           if (s := view.secrets.get((c.namespace, n))) is not None), ""))
                 for c in self._fights.contested(self._clock())]
        counts = Tally(owner for _, owner in found)
        for mapping in cfg.mappings:  # the gauge first: it is never behind an Event
            self.metrics.contested_serviceaccounts.labels(mapping=mapping.name).set(
                counts[mapping.name])
        for c, owner in found:
            sa = view.service_accounts.get(c.namespace, {}).get(c.name)
            self.findings.contested(c, mapping=owner, uid=sa.uid if sa is not None else "")

    def _hold_back(self, action: plan.PatchServiceAccount, add: tuple[str, ...],
                   report: Report) -> tuple[str, ...]:
        """On a contested ServiceAccount our entry goes back only when its back-off is over;
        the daemon comes back to the namespace then."""
        if self._fights is None or not add:
            return add
        wait = self._fights.hold(action.namespace, action.name, self._clock())
        if wait <= 0:
            return add
        ns = action.namespace
        report.held[ns] = min(wait, report.held.get(ns, wait))
        log.info("contested serviceaccount: restoring our entry after its back-off", extra={
            "namespace": ns, "object": action.name, "kind": "serviceaccount",
            "retry_in": round(wait, 1)})
        return ()

    def _report_findings(self, want: desired.Desired, the_plan: plan.Plan,
                         view: model.ClusterView, *, dry_run: bool) -> None:
        for name, rendered in want.rendered.items():
            for cred, registry in rendered.shadowed:
                self.findings.shadowed(name, cred, registry)
        for mc in want.conflicts:
            self.findings.mapping_conflict(mc, view.namespaces, dry_run=dry_run)
        for sc in the_plan.conflicts:
            self.findings.secret_conflict(sc, dry_run=dry_run)
        for b in the_plan.blocked:
            self.findings.blocked(b, dry_run=dry_run)

    def _count_managed(self, cfg: config.Config, view: model.ClusterView,
                       report: Report) -> None:
        mapping_of = {k: s.annotations.get(model.MAPPING_ANNOTATION, "")
                      for k, s in view.secrets.items() if model.owned_by(s, cfg.instance)}
        for act in report.applied:
            if act.kind != "secret":
                continue
            if act.removes:
                mapping_of.pop((act.namespace, act.name), None)
            else:
                mapping_of[(act.namespace, act.name)] = act.mapping or ""
        counts = Tally(mapping_of.values())
        for mapping in cfg.mappings:
            self.metrics.managed_secrets.labels(mapping=mapping.name).set(counts[mapping.name])

    def _apply(self, want: desired.Desired, actions: Iterable[plan.Action], report: Report,
               proceed: Callable[[], bool]) -> None:
        failed_secrets: set[tuple[str, str]] = set()
        gone_namespaces: set[str] = set()
        for action in actions:
            if not proceed():
                report.interrupted = True
                return
            ns, name = action.namespace, action.name
            if ns in gone_namespaces:
                continue
            try:
                match action:
                    case plan.PatchServiceAccount():
                        self._patch(action, failed_secrets, report)
                    case _:
                        done = self._applier.secret(
                            action, lambda act, fresh: apply.recompute_secret(
                                want, act, fresh, conflicts=report.conflicts,
                                blocked=report.blocked))
                        if done is not None:
                            self._done(done, report)
            except errors.NotFound as exc:  # vanished mid-pass: dropped silently
                if isinstance(exc, errors.NamespaceTerminating) or action.creates:
                    gone_namespaces.add(ns)
            except apply.SecretTaken:  # reported as a conflict; its SAs must not point at it
                failed_secrets.add((ns, name))
                for sc in report.conflicts:
                    if (sc.namespace, sc.name) == (ns, name):
                        self.findings.secret_conflict(sc, dry_run=False)
            except errors.KubeError as exc:
                if action.kind == "secret":
                    failed_secrets.add((ns, name))
                report.failures.append(str(exc))
                self.findings.write_failed(action, exc)

    def _patch(self, action: plan.PatchServiceAccount, failed_secrets: set[tuple[str, str]],
               report: Report) -> None:
        """A ServiceAccount's references: none to a Secret this pass failed to write, ours back
        on a contested one only after its back-off."""
        ns, name = action.namespace, action.name
        add = self._hold_back(action, tuple(
            n for n in action.add if (ns, n) not in failed_secrets), report)
        if not (add or action.remove):
            return
        if self._fights is not None and action.remove:
            self._fights.unpatching(ns, name, action.remove, self._clock())
        sent = self._clock()
        if self._applier.service_account(action, add=add):
            if self._fights is not None and add:
                self._fights.restored(ns, name, self._clock(), sent=sent)
            self._done(action, report)

    def _done(self, action: plan.Action, report: Report) -> None:
        report.applied.append(action)
        log.info(str(action), extra={
            "namespace": action.namespace, "object": action.name, "kind": action.kind,
            "action": action.verb, "mapping": action.mapping})
        self._on_applied(action)
