"""The diff: what must be written so the cluster matches the desired state. Pure.

Per namespace the actions come in a safe order: Secrets are created or updated first, then
ServiceAccounts gain their references, then references we added are removed, and only then are
Secrets pruned — so no ServiceAccount ever points at a Secret we have not written.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from syncer import config, desired, model


@dataclass(frozen=True, slots=True)
class CreateSecret:
    content: model.SecretContent
    kind: ClassVar[str] = "secret"
    verb: ClassVar[str] = "create"


@dataclass(frozen=True, slots=True)
class UpdateSecret:
    """Rewrite a Secret in place (same UID), guarded by its resourceVersion."""

    content: model.SecretContent
    resource_version: str
    drop_keys: tuple[str, ...] = ()  # observed data keys (all but ours go)
    adopt: bool = False  # taking over a same-named Secret we did not create
    kind: ClassVar[str] = "secret"

    @property
    def verb(self) -> str:
        return "adopt" if self.adopt else "update"


@dataclass(frozen=True, slots=True)
class ReplaceSecret:
    """Delete and create a managed Secret that cannot change in place: another `type`, or
    `immutable: true` set by someone (SPEC §4). Reported with a Warning Event."""

    content: model.SecretContent
    resource_version: str
    uid: str
    why: str  # "type" or "immutable"
    kind: ClassVar[str] = "secret"
    verb: ClassVar[str] = "replace"


@dataclass(frozen=True, slots=True)
class DeleteSecret:
    namespace: str
    name: str
    resource_version: str
    mapping: str | None = None
    credentials: tuple[str, ...] = ()
    kind: ClassVar[str] = "secret"
    verb: ClassVar[str] = "delete"


@dataclass(frozen=True, slots=True)
class PatchServiceAccount:
    """Add references to usable Secrets and drop references we added (never others')."""

    namespace: str
    name: str
    resource_version: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    kind: ClassVar[str] = "serviceaccount"

    @property
    def verb(self) -> str:
        return "patch" if self.add else "unpatch"


SecretAction = CreateSecret | UpdateSecret | ReplaceSecret | DeleteSecret
Action = SecretAction | PatchServiceAccount


@dataclass(frozen=True, slots=True)
class EvictPod:
    """Evict a Pod stuck pulling without the mapping's Secret (SPEC §5 `recyclePods`), so its
    controller recreates it with the Secret. Only the Pod of this `uid`."""

    namespace: str
    name: str
    uid: str
    mapping: str
    secret_name: str
    credentials: tuple[str, ...] = ()
    kind: ClassVar[str] = "pod"
    verb: ClassVar[str] = "evict"


def where(action: Action) -> tuple[str, str]:
    """(namespace, name) of the object an action writes."""
    if isinstance(action, CreateSecret | UpdateSecret | ReplaceSecret):
        return action.content.namespace, action.content.name
    return action.namespace, action.name


def mapping_of(action: Action) -> str | None:
    if isinstance(action, CreateSecret | UpdateSecret | ReplaceSecret):
        return action.content.mapping
    return action.mapping if isinstance(action, DeleteSecret) else None


def credentials_of(action: Action) -> tuple[str, ...]:
    if isinstance(action, CreateSecret | UpdateSecret | ReplaceSecret):
        return action.content.credentials
    return action.credentials if isinstance(action, DeleteSecret) else ()


def describe(action: Action | EvictPod) -> str:
    """One line for `plan` and logs, e.g. `create secret ns/regcred (hub, ghcr)`,
    `evict pod ns/web-1 (team-a)`."""
    if isinstance(action, EvictPod):
        return f"evict pod {action.namespace}/{action.name} ({action.mapping})"
    ns, name = where(action)
    if isinstance(action, PatchServiceAccount):
        changes = " ".join([f"+{n}" for n in action.add] + [f"-{n}" for n in action.remove])
        return f"{action.verb} serviceaccount {ns}/{name} {changes}"
    creds = credentials_of(action)
    detail = f" ({', '.join(creds)})" if creds else ""
    return f"{action.verb} secret {ns}/{name}{detail}"


def as_json(action: Action | EvictPod) -> dict[str, object]:
    if isinstance(action, EvictPod):
        return {"action": action.verb, "kind": action.kind, "namespace": action.namespace,
                "name": action.name, "credentials": list(action.credentials),
                "mapping": action.mapping}
    ns, name = where(action)
    return {"action": action.verb, "kind": action.kind, "namespace": ns, "name": name,
            "credentials": list(credentials_of(action))}


@dataclass(frozen=True, slots=True)
class SecretConflict:
    """A Secret with our name that we do not manage (and may not adopt)."""

    namespace: str
    name: str
    mapping: str
    uid: str = field(default="", compare=False)  # of their Secret, for the Warning Event


@dataclass(frozen=True, slots=True)
class Blocked:
    """A Secret that cannot be written yet because a credential has no good value."""

    namespace: str
    name: str
    mapping: str
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]
    conflicts: tuple[SecretConflict, ...]
    blocked: tuple[Blocked, ...]


def to_json(actions: tuple[Action | EvictPod, ...]) -> str:
    return json.dumps([as_json(a) for a in actions], indent=2)


def secret_differs(observed: model.Secret, target: desired.Target, data: bytes) -> bool:
    """Whether a managed Secret must be rewritten to match its target (no write otherwise)."""
    return (
        observed.data != data
        or observed.data_keys != (model.DOCKERCONFIG_KEY,)
        or observed.labels.get(model.MANAGED_BY_LABEL) != model.MANAGED_BY_VALUE
        or observed.annotations.get(model.MAPPING_ANNOTATION) != target.mapping
        or observed.annotations.get(model.CREDENTIALS_ANNOTATION) != ",".join(target.credentials)
    )


def _needs_replacing(observed: model.Secret, data: bytes) -> str | None:
    """Why a managed Secret cannot be brought in line in place, if it cannot."""
    if observed.type != model.SECRET_TYPE:
        return "type"  # a Secret's type is immutable
    if observed.immutable and (observed.data != data
                               or observed.data_keys != (model.DOCKERCONFIG_KEY,)):
        return "immutable"
    return None


def secret_actions(
    target: desired.Target,
    observed: model.Secret | None,
    conflicts: list[SecretConflict],
    blocked: list[Blocked],
) -> tuple[list[SecretAction], bool]:
    """Actions for one target Secret, and whether it will exist afterwards for SAs to use."""
    data = target.rendered.data
    if observed is not None and not observed.managed:
        if not target.adopt or observed.type != model.SECRET_TYPE:  # type is immutable
            conflicts.append(SecretConflict(target.namespace, target.name, target.mapping,
                                            observed.uid))
            return [], False
        if data is None:
            blocked.append(Blocked(target.namespace, target.name, target.mapping,
                                   target.rendered.missing))
            return [], False
        return [UpdateSecret(_content(target, data), observed.resource_version,
                             drop_keys=observed.data_keys, adopt=True)], True
    if data is None:
        if observed is None:
            blocked.append(Blocked(target.namespace, target.name, target.mapping,
                                   target.rendered.missing))
            return [], False
        return [], True  # keep the last good Secret exactly as it is
    if observed is None:
        return [CreateSecret(_content(target, data))], True
    why = _needs_replacing(observed, data)
    if why is not None:
        return [ReplaceSecret(_content(target, data), observed.resource_version, observed.uid,
                              why)], True
    if secret_differs(observed, target, data):
        return [UpdateSecret(_content(target, data), observed.resource_version,
                             drop_keys=observed.data_keys)], True
    return [], True


def _content(target: desired.Target, data: bytes) -> model.SecretContent:
    return model.SecretContent(namespace=target.namespace, name=target.name,
                               mapping=target.mapping, credentials=target.credentials, data=data)


def _prune_allowed(cfg: config.Config, secret: model.Secret) -> bool:
    mapping_name = secret.annotations.get(model.MAPPING_ANNOTATION)
    for mapping in cfg.mappings:
        if mapping.name == mapping_name:
            return mapping.prune
    return cfg.defaults.prune


def diff(cfg: config.Config, want: desired.Desired, view: model.ClusterView) -> Plan:
    """Compare desired with observed and list only the writes that change something."""
    by_ns: dict[str, list[desired.Target]] = defaultdict(list)
    for target in want.targets.values():
        by_ns[target.namespace].append(target)
    managed_by_ns: dict[str, list[model.Secret]] = defaultdict(list)
    for secret in view.secrets.values():
        if secret.managed and want.in_scope(secret.namespace):
            managed_by_ns[secret.namespace].append(secret)

    actions: list[Action] = []
    conflicts: list[SecretConflict] = []
    blocked: list[Blocked] = []
    # Also visit namespaces where only our SA bookkeeping is left (Secret gone, no target).
    with_refs = {ns for ns, accounts in view.service_accounts.items()
                 if want.in_scope(ns) and any(a.ours for a in accounts.values())}
    for ns_name in sorted(set(by_ns) | set(managed_by_ns) | with_refs):
        ns = view.namespaces.get(ns_name)
        if ns is None or ns.terminating:
            continue  # vanished or going away: hands off
        targets = by_ns.get(ns_name, [])
        usable: set[str] = set()
        secret_writes: list[SecretAction] = []
        for target in targets:
            acts, exists = secret_actions(
                target, view.secrets.get((ns_name, target.name)), conflicts, blocked
            )
            secret_writes.extend(acts)
            if exists:
                usable.add(target.name)
        prunable = [
            s for s in managed_by_ns.get(ns_name, [])
            if (ns_name, s.name) not in want.targets and _prune_allowed(cfg, s)
        ]
        sa_actions = _service_account_actions(
            cfg, targets, usable, {s.name for s in prunable},
            {s.name for s in managed_by_ns.get(ns_name, [])},
            view.service_accounts.get(ns_name, {}),
        )
        actions.extend(secret_writes)
        actions.extend(a for a in sa_actions if a.add)
        actions.extend(a for a in sa_actions if not a.add)
        actions.extend(
            DeleteSecret(ns_name, s.name, s.resource_version,
                         mapping=s.annotations.get(model.MAPPING_ANNOTATION),
                         credentials=model.split_names(
                             s.annotations.get(model.CREDENTIALS_ANNOTATION)))
            for s in sorted(prunable, key=lambda s: s.name)
        )
    return Plan(tuple(actions), tuple(conflicts), tuple(blocked))


def _service_account_actions(
    cfg: config.Config,
    targets: list[desired.Target],
    usable: set[str],
    pruned_secrets: set[str],
    managed: set[str],
    accounts: Mapping[str, model.ServiceAccount],
) -> list[PatchServiceAccount]:
    """Reference usable Secrets from the selected SAs; drop only references we added.

    A reference of ours is dropped when its Secret is pruned, when the SA is no longer selected
    for it (with pruning on for that mapping), or when nothing we manage has that name any more.
    A reference still wanted stays even while its credential fails. Names someone else added
    are never touched, and a name already present is never added twice.
    """
    wanted = {t.name: t for t in targets}
    out: list[PatchServiceAccount] = []
    for sa in sorted(accounts.values(), key=lambda a: a.name):
        present = set(sa.image_pull_secrets)
        add = tuple(
            t.name for t in targets
            if t.selects_service_account(sa.name) and t.name in usable and t.name not in present
        )
        remove: list[str] = []
        for name in sa.ours:
            target = wanted.get(name)
            if target is not None:
                if not target.selects_service_account(sa.name) and _mapping_prunes(cfg, target):
                    remove.append(name)
            elif name in pruned_secrets or (name not in managed and cfg.defaults.prune):
                remove.append(name)
        if not add and not remove:
            continue
        out.append(PatchServiceAccount(sa.namespace, sa.name, sa.resource_version, add=add,
                                       remove=tuple(remove)))
    return out


def _mapping_prunes(cfg: config.Config, target: desired.Target) -> bool:
    return next((m.prune for m in cfg.mappings if m.name == target.mapping), cfg.defaults.prune)


def service_account_change(
    sa: model.ServiceAccount, *, add: tuple[str, ...], remove: tuple[str, ...]
) -> model.ServiceAccountChange | None:
    """The change that adds `add` and drops `remove` (only names we recorded) from a
    ServiceAccount's imagePullSecrets, keeping every other entry and its order; None if nothing
    changes. It is valid only at the observed resourceVersion: the list is atomic, so without
    that precondition a concurrent writer's entry could be lost.
    """
    current = list(sa.image_pull_secrets)
    dropping = {n for n in remove if n in sa.ours}
    new = [n for n in current if n not in dropping]
    appended = [n for n in dict.fromkeys(add) if n not in new]
    new.extend(appended)
    ours = [n for n in sa.ours if n not in dropping]
    ours.extend(n for n in appended if n not in ours)
    if new == current and ours == list(sa.ours):
        return None
    return model.ServiceAccountChange(
        namespace=sa.namespace, name=sa.name, resource_version=sa.resource_version,
        image_pull_secrets=tuple(new) if new != current else None,
        ours=tuple(ours) if ours != list(sa.ours) else None,
        has_annotations=sa.has_annotations,
        track_fields=not sa.tracked and bool(appended))


def uninstall(view: model.ClusterView) -> tuple[Action, ...]:
    """Everything to undo, cluster-wide, without a config: our entries out of every
    ServiceAccount first (only names our annotation recorded), then every Secret with our
    label — so no ServiceAccount ever points at a Secret we deleted."""
    unpatch = [
        PatchServiceAccount(sa.namespace, sa.name, sa.resource_version, remove=sa.ours)
        for ns in sorted(view.service_accounts)
        for sa in sorted(view.service_accounts[ns].values(), key=lambda a: a.name) if sa.ours
    ]
    delete = [
        DeleteSecret(s.namespace, s.name, s.resource_version,
                     mapping=s.annotations.get(model.MAPPING_ANNOTATION),
                     credentials=model.split_names(s.annotations.get(model.CREDENTIALS_ANNOTATION)))
        for _, s in sorted(view.secrets.items()) if s.managed
    ]
    return (*unpatch, *delete)
