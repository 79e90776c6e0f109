"""`pullsecret-syncer uninstall`: remove what one installation (or every one) wrote,
cluster-wide, without a config.

Reads with two lists, then applies `teardown.actions` with the same race-safe writes as a pass:
a ServiceAccount changed meanwhile is re-read (other writers' and installations' entries stay), a
Secret changed meanwhile is removed only if it is still the installation's own, an adopted Secret
is handed back instead of deleted, and a Secret whose ServiceAccount could not be unpatched is
kept (no ServiceAccount is left pointing at a deleted Secret). Running it twice does nothing the
second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from syncer.core import model
from syncer.decide import plan, teardown
from syncer.kube import api, errors
from syncer.reconcile import apply, engine
from syncer.telemetry import observability

log = logging.getLogger("syncer.reconcile")


def observe(cluster: api.Lister) -> model.ClusterView:
    secrets = {(s.namespace, s.name): s
               for s in cluster.list(api.SECRETS, selector=api.MANAGED).items}
    accounts: dict[str, dict[str, model.ServiceAccount]] = {}
    for sa in cluster.list(api.SERVICE_ACCOUNTS).items:
        if sa.ours:
            accounts.setdefault(sa.namespace, {})[sa.name] = sa
    return model.ClusterView({}, secrets, accounts)


def still_ours(instance: str | None) -> apply.Recompute:
    """After a lost race: remove the Secret only if it is still the installation's own."""
    def recompute(action: plan.SecretAction,
                  fresh: model.Secret | None) -> plan.SecretAction | None:
        if fresh is None or not model.owned_by(fresh, instance):
            return None
        return plan.prune_action(fresh)
    return recompute


def run(cluster: api.TeardownTarget, *, metrics: observability.Metrics, dry_run: bool,
        instance: str | None = model.DEFAULT_INSTANCE,
        on_applied: Callable[[plan.Action], None] | None = None,
        on_planned: Callable[[Sequence[plan.Action]], None] | None = None) -> engine.Report:
    """Undo installation `instance` (None: every installation)."""
    view = observe(cluster)
    actions = teardown.actions(view, instance=instance)
    report = engine.Report(planned=list(actions))
    if dry_run:
        return report
    if on_planned is not None:
        on_planned(actions)
    applier = apply.Applier(cluster, metrics=metrics, cache=apply.NoCache(),
                            on_replaced=lambda action, uid: None)
    done = on_applied or (lambda action: None)
    still_referenced: set[tuple[str, str]] = set()  # Secrets a ServiceAccount may still list
    for action in actions:
        match action:
            case plan.PatchServiceAccount():
                written = _unpatch(applier, action, report, still_referenced)
            case _:
                written = _remove(applier, action, report, still_referenced, instance)
        if written:
            report.applied.append(action)
            done(action)
    return report


def _unpatch(applier: apply.Applier, action: plan.PatchServiceAccount, report: engine.Report,
             still_referenced: set[tuple[str, str]]) -> bool:
    """Take the installation's entries out of a ServiceAccount; on failure its Secrets stay."""
    try:
        return applier.service_account(action, add=())
    except errors.NotFound:
        return False  # gone meanwhile: nothing left to undo
    except errors.KubeError as exc:
        still_referenced.update((action.namespace, secret) for secret in action.remove)
        _failed(action, exc, report)
        return False


def _remove(applier: apply.Applier, action: plan.SecretAction, report: engine.Report,
            still_referenced: set[tuple[str, str]], instance: str | None) -> bool:
    """Delete (or hand back) a Secret, unless a ServiceAccount may still list it."""
    if (action.namespace, action.name) in still_referenced:
        report.failures.append(f"secret {action.namespace}/{action.name}: kept, a "
                               "ServiceAccount that lists it could not be unpatched")
        return False
    try:
        return applier.secret(action, still_ours(instance)) is not None
    except errors.NotFound:
        return False
    except errors.KubeError as exc:
        _failed(action, exc, report)
        return False


def _failed(action: plan.Action, exc: errors.KubeError, report: engine.Report) -> None:
    report.failures.append(str(exc))
    log.error("write failed", extra={"namespace": action.namespace, "object": action.name,
                                     "action": action.verb, "error": str(exc)})
