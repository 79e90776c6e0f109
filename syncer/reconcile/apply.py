"""Applying one action, safely: a write that loses a race (409, failed precondition) is re-read and
recomputed, never forced, so a concurrent writer's change is never overwritten or dropped.

A `Cache` learns every write (and what a lost race taught us) before the watch echoes it, so the
next pass does not act on stale data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from syncer.core import model
from syncer.decide import desired, plan
from syncer.kube import api, errors
from syncer.telemetry import observability

log = logging.getLogger("syncer.reconcile")

RACE_RETRIES = 8  # re-read-and-retry rounds for one object that keeps changing under us


class Cache(Protocol):
    def note_secret(self, key: tuple[str, str], secret: model.Secret | None) -> None: ...

    def note_service_account(self, sa: model.ServiceAccount) -> None: ...


class NoCache:
    """For one-shot commands: nothing to keep up to date."""

    def note_secret(self, key: tuple[str, str], secret: model.Secret | None) -> None:
        return

    def note_service_account(self, sa: model.ServiceAccount) -> None:
        return


class SecretTaken(errors.KubeError):
    """A write lost the race to someone else's same-named Secret (reported as a conflict)."""


# What to do after a lost race: the fresh action, or None when nothing is left to do. It raises
# SecretTaken when the Secret turned out to be someone else's.
Recompute = Callable[[plan.SecretAction, model.Secret | None], plan.SecretAction | None]


class Applier:
    def __init__(self, cluster: api.PullSecretWriter, *, metrics: observability.Metrics,
                 cache: Cache, on_replaced: Callable[[plan.ReplaceSecret, str], None]) -> None:
        self._cluster = cluster
        self._metrics = metrics
        self._cache = cache
        self._on_replaced = on_replaced

    def _wrote(self, kind: str, verb: str) -> None:
        self._metrics.record_write(kind, verb)

    # ---- Secrets --------------------------------------------------------------------------
    def secret(self, action: plan.SecretAction, recompute: Recompute) -> plan.SecretAction | None:
        """Apply a Secret action, retrying lost races; the action finally applied (None when
        a re-read showed nothing was left to do)."""
        current: plan.SecretAction = action
        for _ in range(RACE_RETRIES):
            key = current.namespace, current.name
            try:
                self._secret_once(current)
                return current
            except errors.Conflict:
                try:
                    fresh: model.Secret | None = self._cluster.get_secret(*key)
                except errors.NotFound:
                    fresh = None
                self._cache.note_secret(key, fresh)
                nxt = recompute(current, fresh)
                if nxt is None:
                    return None
                current = nxt
        raise errors.Conflict(
            f"secret {action.namespace}/{action.name}: kept changing; will retry")

    def _secret_once(self, action: plan.SecretAction) -> None:
        """The requests of one Secret action: the one place that says what each kind sends."""
        key = action.namespace, action.name
        match action:
            case plan.CreateSecret():
                self._cache.note_secret(key, self._cluster.create_secret(action.content))
                self._wrote("secret", "create")
            case plan.UpdateSecret():
                self._cache.note_secret(key, self._cluster.update_secret(
                    action.content, resource_version=action.resource_version,
                    drop_keys=action.drop_keys))
                self._wrote("secret", "update")
            case plan.ReplaceSecret():
                self._cluster.delete_secret(*key, resource_version=action.resource_version)
                self._wrote("secret", "delete")
                self._cache.note_secret(key, None)
                created = self._cluster.create_secret(action.content)
                self._wrote("secret", "create")
                self._cache.note_secret(key, created)
                self._on_replaced(action, created.uid)
            case plan.ReleaseSecret():
                self._cache.note_secret(key, self._cluster.release_secret(
                    *key, resource_version=action.resource_version))
                self._wrote("secret", "update")
            case plan.DeleteSecret():
                self._cluster.delete_secret(*key, resource_version=action.resource_version)
                self._wrote("secret", "delete")
                self._cache.note_secret(key, None)

    # ---- ServiceAccounts --------------------------------------------------------------------
    def service_account(self, action: plan.PatchServiceAccount, *,
                        add: tuple[str, ...]) -> bool:
        """Patch with a resourceVersion precondition, starting from the ServiceAccount the
        action was computed from; on a lost race re-read and recompute, so a concurrent
        writer's entries are never dropped. True when a write was made."""
        sa = action.observed
        for _ in range(RACE_RETRIES):
            if sa is None:
                try:
                    sa = self._cluster.get_service_account(action.namespace, action.name)
                except errors.NotFound:
                    return False  # the ServiceAccount was deleted meanwhile
                self._cache.note_service_account(sa)
            change = plan.service_account_change(sa, add=add, remove=action.remove,
                                                 instance=action.instance)
            if change is None:
                return False
            try:
                self._cache.note_service_account(self._cluster.patch_service_account(change))
            except errors.Conflict:
                sa = None
                continue
            except errors.NotFound:
                return False
            self._wrote("serviceaccount", "patch")
            return True
        raise errors.Conflict(f"serviceaccount {action.namespace}/{action.name}: kept changing")


def recompute_secret(want: desired.Desired, action: plan.SecretAction,
                     fresh: model.Secret | None, *, conflicts: list[plan.SecretConflict],
                     blocked: list[plan.Blocked]) -> plan.SecretAction | None:
    """After a lost race, decide afresh from the re-read Secret (pure)."""
    key = action.namespace, action.name
    target = want.targets.get(key)
    if target is None:  # a prune: remove only what is still ours
        if fresh is None or not model.owned_by(fresh, want.instance):
            return None
        return plan.prune_action(fresh)
    found: list[plan.SecretConflict] = []
    acts, _ = plan.secret_actions(target, fresh, found, blocked, instance=want.instance)
    conflicts.extend(found)
    if found:
        raise SecretTaken(f"secret {key[0]}/{key[1]}: taken by a Secret we do not manage",
                          reason="SecretConflict")
    return acts[0] if acts else None
