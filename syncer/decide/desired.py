"""Desired state: which Secret each namespace should hold and which ServiceAccounts should use it.

`compute(config, credentials, namespaces)` is pure: the same inputs always give the same answer,
so any pass (full, per namespace, after a crash) recomputes it from scratch.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from syncer import config
from syncer.core import dockerconfig, model


@dataclass(frozen=True, slots=True)
class Rendered:
    """A mapping's `.dockerconfigjson`, or why it cannot be built yet."""

    data: bytes | None = field(repr=False)  # None while a credential has never been read
    missing: tuple[str, ...] = ()  # credentials without a good value
    shadowed: tuple[tuple[str, str], ...] = ()  # (credential, registry) hidden by an earlier one


@dataclass(frozen=True, slots=True)
class Target:
    """The Secret one mapping wants in one namespace."""

    namespace: str
    name: str
    mapping: str
    credentials: tuple[str, ...]
    service_accounts: tuple[str, ...]
    adopt: bool
    rendered: Rendered

    def selects_service_account(self, name: str) -> bool:
        return "*" in self.service_accounts or name in self.service_accounts


@dataclass(frozen=True, slots=True)
class MappingConflict:
    """Two mappings want the same Secret name in one namespace; the first in file order wins."""

    namespace: str
    secret_name: str
    winner: str
    loser: str


@dataclass(frozen=True, slots=True)
class Desired:
    targets: Mapping[tuple[str, str], Target]  # (namespace, secret name) -> target
    conflicts: tuple[MappingConflict, ...]
    rendered: Mapping[str, Rendered]  # by mapping name
    scope: frozenset[str] | None  # namespaces considered; None = all
    instance: str = model.DEFAULT_INSTANCE  # the installation whose objects these are

    def in_scope(self, namespace: str) -> bool:
        return self.scope is None or namespace in self.scope


def label_selector_matches(selector: config.LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every expression hold."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def selects(selection: config.NamespaceSelection, namespace: model.Namespace) -> bool:
    """Whether a mapping's namespace selection picks this namespace.

    `exclude` wins; `names` is exact; the reserved kube-* namespaces are only ever selected by
    `names`, never by a pattern or a label selector.
    """
    name = namespace.name
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in selection.exclude):
        return False
    if name in selection.names:
        return True
    if name in model.RESERVED_NAMESPACES:
        return False
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in selection.patterns):
        return True
    return selection.selector is not None and label_selector_matches(
        selection.selector, namespace.labels
    )


def render_mapping(
    mapping: config.MappingSpec, credentials: Mapping[str, dockerconfig.Auths]
) -> Rendered:
    """Merge a mapping's credentials in its order; None data while any has no good value."""
    missing = tuple(name for name in mapping.credentials if name not in credentials)
    if missing:
        return Rendered(data=None, missing=missing)
    parts = [(name, credentials[name]) for name in mapping.credentials]
    auths, shadowed = dockerconfig.merge(parts)
    return Rendered(data=dockerconfig.render(auths), shadowed=tuple(shadowed))


def compute(
    cfg: config.Config,
    credentials: Mapping[str, dockerconfig.Auths],
    namespaces: Iterable[model.Namespace],
    *,
    scope: Iterable[str] | None = None,
) -> Desired:
    """The Secrets every (non-terminating) namespace should hold.

    `credentials` holds the last good value of each credential that has one. `scope` limits the
    answer to some namespaces (a per-namespace pass); None means all.
    """
    scope_set = None if scope is None else frozenset(scope)
    rendered = {m.name: render_mapping(m, credentials) for m in cfg.mappings}
    targets: dict[tuple[str, str], Target] = {}
    conflicts: list[MappingConflict] = []
    for ns in sorted(namespaces, key=lambda n: n.name):
        if ns.terminating or (scope_set is not None and ns.name not in scope_set):
            continue
        for mapping in cfg.mappings:
            if not selects(mapping.namespaces, ns):
                continue
            key = (ns.name, mapping.secret_name)
            if key in targets:
                conflicts.append(MappingConflict(
                    ns.name, mapping.secret_name, targets[key].mapping, mapping.name))
                continue
            targets[key] = Target(
                namespace=ns.name,
                name=mapping.secret_name,
                mapping=mapping.name,
                credentials=mapping.credentials,
                service_accounts=mapping.service_accounts,
                adopt=mapping.adopt_existing,
                rendered=rendered[mapping.name],
            )
    return Desired(
        targets=targets, conflicts=tuple(conflicts), rendered=rendered, scope=scope_set,
        instance=cfg.instance)
