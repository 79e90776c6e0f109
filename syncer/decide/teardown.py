"""What `uninstall` removes, decided without a config (pure): one installation's own entries and
Secrets, or every installation's with `--all-instances`."""

from __future__ import annotations

from syncer.core import model
from syncer.decide import plan


def actions(view: model.ClusterView, *, instance: str | None) -> tuple[plan.Action, ...]:
    """Everything installation `instance` (None: every one) has to undo, cluster-wide, without
    a config: its entries out of every ServiceAccount first (only names it recorded), then every
    Secret it wrote where it stands — deleted, or handed back if adopted — so no ServiceAccount
    ever points at a Secret we deleted. Copies of our Secrets and other installations' objects
    stay."""
    unpatch = [
        plan.PatchServiceAccount(sa.namespace, sa.name, sa.resource_version,
                                 remove=model.added_by(sa, inst), instance=inst, observed=sa,
                                 observed_uid=sa.uid)
        for ns in sorted(view.service_accounts)
        for sa in sorted(view.service_accounts[ns].values(), key=lambda a: a.name)
        for inst in model.instances_on(sa)
        if (instance is None or inst == instance) and model.added_by(sa, inst)
    ]
    remove = [plan.prune_action(s) for _, s in sorted(view.secrets.items())
              if model.owned_by(s, instance)]
    return (*unpatch, *remove)
