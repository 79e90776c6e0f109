"""`sync` and `plan`: one pass over fresh lists — read every credential once, observe, reconcile,
recycle Pending Pods — returned as a `PassReport`. `plan` is the same pass with no write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from backends import base
from syncer import config
from syncer.credentials import fetch, publish
from syncer.decide import plan as plans
from syncer.decide import recycle
from syncer.kube import api, errors
from syncer.reconcile import engine, evict, observe
from syncer.telemetry import observability


class Listener(Protocol):
    """Told about the writes of a pass as they happen (the command line's display)."""

    def planned(self, actions: Sequence[plans.Action]) -> None:
        """The writes about to be made, before the first one."""

    def applied(self, action: plans.Action | recycle.EvictPod) -> None:
        """One write accepted by the apiserver."""

    def close(self) -> None:
        """The pass's writes are over (evictions may still follow): stop showing progress."""


@dataclass(frozen=True, slots=True)
class Contested:
    """A ServiceAccount the daemon reported as contested: another writer keeps taking our
    `imagePullSecrets` entry out."""

    namespace: str
    name: str
    manager: str


@dataclass(slots=True)
class PassReport:
    """What one `sync` (or `plan`, `dry_run`) pass wrote or would write, and what went wrong.

    `error` set: the pass could not start (the cluster could not be read); nothing else in the
    report means anything then. Never holds a credential value.
    """

    dry_run: bool
    written: list[plans.Action] = field(default_factory=list)
    planned: list[plans.Action] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    conflicts: list[plans.SecretConflict] = field(default_factory=list)
    blocked: list[plans.Blocked] = field(default_factory=list)
    credentials_failing: list[str] = field(default_factory=list)  # one message per credential
    recycling: evict.Outcome = field(default_factory=evict.Outcome)
    recycling_enabled: bool = False
    contested: list[Contested] = field(default_factory=list)  # `plan` only
    contested_unknown: str | None = None  # why `contested` could not be read
    error: str | None = None

    @property
    def evictions(self) -> list[recycle.EvictPod]:
        """The Pods evicted (`sync`) or that would be (`plan`)."""
        return self.recycling.planned if self.dry_run else self.recycling.evicted

    @property
    def ok(self) -> bool:
        return (self.error is None and not (self.failures or self.conflicts or self.blocked)
                and self.recycling.ok and not self.credentials_failing)

    @property
    def exit_status(self) -> int:
        """0 when everything was done (or could be), 1 when something failed."""
        return 0 if self.ok else 1


class Quiet:
    """The listener of `plan`: a dry run writes nothing, so there is nothing to show."""

    def planned(self, actions: Sequence[plans.Action]) -> None:
        return

    def applied(self, action: plans.Action | recycle.EvictPod) -> None:
        return

    def close(self) -> None:
        return


def sync(cfg: config.Config, backends: Mapping[str, base.Backend], cluster: api.ClusterAPI, *,
         listener: Listener | None = None,
         metrics: observability.Metrics | None = None) -> PassReport:
    """One full reconcile pass that writes; every write (and eviction) is told to `listener`."""
    return _one_pass(cfg, backends, cluster, dry_run=False, listener=listener or Quiet(),
                     metrics=metrics or observability.Metrics())


def plan(cfg: config.Config, backends: Mapping[str, base.Backend], cluster: api.ClusterAPI, *,
         metrics: observability.Metrics | None = None) -> PassReport:
    """What `sync` would do now, and the ServiceAccounts the daemon found contested; no write
    (credentials are read, registries are not asked)."""
    return _one_pass(cfg, backends, cluster, dry_run=True, listener=Quiet(),
                     metrics=metrics or observability.Metrics())


def _one_pass(cfg: config.Config, backends: Mapping[str, base.Backend], cluster: api.ClusterAPI,
              *, dry_run: bool, listener: Listener,
              metrics: observability.Metrics) -> PassReport:
    gate = publish.VerifyGate(metrics=metrics) if not dry_run else None
    readings = fetch.read_all(cfg, backends, metrics=metrics, gate=gate)
    good = {n: r.auths for n, r in readings.items() if r.auths is not None}
    out = PassReport(dry_run=dry_run, recycling_enabled=recycle.enabled(cfg))
    try:
        view = observe.observe(cluster, cfg)
    except errors.KubeError as exc:
        out.error = str(exc)
        return out
    try:
        eng = engine.Engine(cluster, metrics=metrics, on_planned=listener.planned,
                            on_applied=listener.applied)
        done = eng.reconcile(cfg, good, view, dry_run=dry_run)
    finally:
        listener.close()
    out.written, out.planned = done.applied, done.planned
    out.failures, out.conflicts, out.blocked = done.failures, done.conflicts, done.blocked
    out.recycling = evict.one_shot(  # after the pass's writes, against what they left
        cluster, cfg, good, view, done.planned if dry_run else done.applied,
        metrics=metrics, found=eng.findings, dry_run=dry_run)
    for eviction in out.recycling.evicted:
        listener.applied(eviction)  # told like every write of the pass
    if dry_run:
        try:
            out.contested = [Contested(ns, name, manager) for ns, name, manager
                             in observe.contested(cluster, view, done.planned)]
        except errors.KubeError as exc:
            out.contested_unknown = str(exc)
    out.credentials_failing = [str(r.error) for r in readings.values() if r.error is not None]
    return out
