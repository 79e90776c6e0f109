"""Reading what a pass compares against, with a constant number of list calls (no per-namespace
GET): Namespaces, ServiceAccounts, our Secrets, and same-named Secrets we do not manage."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from syncer import config
from syncer.core import model
from syncer.decide import fight, plan
from syncer.kube import api


def secret_names(cfg: config.Config) -> list[str]:
    """Every Secret name some mapping writes."""
    return sorted({m.secret_name for m in cfg.mappings})


def same_named(cluster: api.Lister, cfg: config.Config) -> list[model.Secret]:
    """Secrets called like one of ours, in any namespace (finds those we do not manage)."""
    found: list[model.Secret] = []
    for name in secret_names(cfg):
        found.extend(cluster.list(api.SECRETS, selector=api.named(name)).items)
    return found


def observe(cluster: api.Lister, cfg: config.Config) -> model.ClusterView:
    namespaces = {ns.name: ns for ns in cluster.list(api.NAMESPACES).items}
    secrets = {(s.namespace, s.name): s
               for s in cluster.list(api.SECRETS, selector=api.MANAGED).items}
    for s in same_named(cluster, cfg):
        secrets.setdefault((s.namespace, s.name), s)
    accounts: dict[str, dict[str, model.ServiceAccount]] = {}
    for sa in cluster.list(api.SERVICE_ACCOUNTS).items:
        accounts.setdefault(sa.namespace, {})[sa.name] = sa
    return model.ClusterView(namespaces, secrets, accounts)


def contested(cluster: api.Lister, view: model.ClusterView,
              planned: Iterable[plan.Action]) -> list[tuple[str, str, str]]:
    """(namespace, name, manager) of the ServiceAccounts the daemon reported as contested within
    the last hour, from its `ImagePullSecretsContested` Events: its fight state lives in its
    memory only, and these are what it left in the cluster. Raises KubeError (e.g. Forbidden:
    reading Events needs `list` on events, which the daemon's own role does not have)."""
    ours = {ns for (ns, _), s in view.secrets.items() if s.managed}
    ours.update(a.namespace for a in planned)
    events = cluster.list(api.EVENTS, selector=api.reason(fight.EVENT_REASON)).items
    return fight.reported(events, now=datetime.datetime.now(datetime.UTC),
                          accounts=view.service_accounts, namespaces=ours)
