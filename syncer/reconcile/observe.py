"""Reading what a pass compares against, with a constant number of list calls (no per-namespace
GET): Namespaces, ServiceAccounts, our Secrets, and same-named Secrets we do not manage."""

from __future__ import annotations

from syncer import config, model
from syncer.kube import api


def secret_names(cfg: config.Config) -> list[str]:
    """Every Secret name some mapping writes."""
    return sorted({m.secret_name for m in cfg.mappings})


def same_named(cluster: api.ClusterAPI, cfg: config.Config) -> list[model.Secret]:
    """Secrets called like one of ours, in any namespace (finds those we do not manage)."""
    found: list[model.Secret] = []
    for name in secret_names(cfg):
        found.extend(cluster.list(api.SECRETS, selector=api.named(name)).items)
    return found


def observe(cluster: api.ClusterAPI, cfg: config.Config) -> model.ClusterView:
    namespaces = {ns.name: ns for ns in cluster.list(api.NAMESPACES).items}
    secrets = {(s.namespace, s.name): s
               for s in cluster.list(api.SECRETS, selector=api.MANAGED).items}
    for s in same_named(cluster, cfg):
        secrets.setdefault((s.namespace, s.name), s)
    accounts: dict[str, dict[str, model.ServiceAccount]] = {}
    for sa in cluster.list(api.SERVICE_ACCOUNTS).items:
        accounts.setdefault(sa.namespace, {})[sa.name] = sa
    return model.ClusterView(namespaces, secrets, accounts)
