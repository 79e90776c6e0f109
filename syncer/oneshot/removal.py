"""`uninstall`: remove what one installation (or every one) wrote, cluster-wide, without a
config — returned as an `UninstallReport` (the removal itself is `syncer.reconcile.uninstall`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncer.core import model
from syncer.decide import plan
from syncer.kube import api, errors
from syncer.oneshot import passes
from syncer.reconcile import uninstall as removal
from syncer.telemetry import observability


@dataclass(frozen=True, slots=True)
class UninstallOptions:
    instance: str | None = model.DEFAULT_INSTANCE  # None: every installation
    dry_run: bool = False  # list what would be removed; remove nothing


@dataclass(slots=True)
class UninstallReport:
    """What was removed (or would be, `dry_run`) and what could not be. `error` set: the
    cluster could not be read, nothing was removed."""

    dry_run: bool
    planned: list[plan.Action] = field(default_factory=list)
    applied: list[plan.Action] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def removed(self) -> list[plan.Action]:
        """The removals made (or, `dry_run`, that would be made)."""
        return self.planned if self.dry_run else self.applied

    @property
    def service_accounts(self) -> int:
        """ServiceAccounts whose entries are (or would be) taken out."""
        return sum(a.kind == "serviceaccount" for a in self.removed)

    @property
    def released(self) -> int:
        """Adopted Secrets handed back instead of deleted."""
        return sum(a.verb == "release" for a in self.removed)

    @property
    def secrets(self) -> int:
        """Secrets deleted."""
        return len(self.removed) - self.service_accounts - self.released

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1


def uninstall(cluster: api.ClusterAPI, options: UninstallOptions = UninstallOptions(), *,
              listener: passes.Listener | None = None,
              metrics: observability.Metrics | None = None) -> UninstallReport:
    """Every removal is told to `listener` as it is made (none in a dry run)."""
    told = listener or passes.Quiet()
    try:
        done = removal.run(cluster, metrics=metrics or observability.Metrics(),
                           dry_run=options.dry_run, instance=options.instance,
                           on_planned=told.planned, on_applied=told.applied)
    except errors.KubeError as exc:
        return UninstallReport(dry_run=options.dry_run, error=str(exc))
    finally:
        told.close()
    return UninstallReport(dry_run=options.dry_run, planned=done.planned,
                           applied=done.applied, failures=done.failures)
