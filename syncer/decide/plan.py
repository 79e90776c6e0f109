"""The diff: what must be written so the cluster matches the desired state. Pure.

Per namespace the actions come in a safe order: Secrets are created or updated first, then
ServiceAccounts gain their references, then references we added are removed, and only then are
Secrets pruned — so no ServiceAccount ever points at a Secret we have not written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import ClassVar

from syncer import config
from syncer.core import model
from syncer.decide import desired


@dataclass(frozen=True, slots=True)
class BaseAction:
    """What every action carries: the object it writes (`namespace`, `name`, `kind`), what it
    does (`verb`), what it serves (`mapping`, `credentials`: empty for a ServiceAccount) and
    the uid of the object as the pass observed it (empty while it does not exist), for the
    Warning Event a failed write leaves on it. `str(action)` is its one line, names only:
    `create secret ns/regcred (hub, ghcr)` — the line `plan` prints and the logs say."""

    namespace: str
    name: str
    _: KW_ONLY
    mapping: str | None = None
    credentials: tuple[str, ...] = ()
    observed_uid: str = ""
    kind: ClassVar[str] = "secret"
    VERB: ClassVar[str] = ""
    writes: ClassVar[int] = 1  # API writes it costs against the client-side rate limit
    creates: ClassVar[bool] = False  # makes a new object (a 404 means its namespace is gone)
    removes: ClassVar[bool] = False  # our Secret is gone (or no longer ours) afterwards

    @property
    def verb(self) -> str:
        return self.VERB

    def _detail(self) -> str:
        return f" ({', '.join(self.credentials)})" if self.credentials else ""

    def __str__(self) -> str:
        return f"{self.verb} {self.kind} {self.namespace}/{self.name}{self._detail()}"


@dataclass(frozen=True, slots=True)
class SecretWrite(BaseAction):
    """A Secret action that writes our content: where it goes and what for come from it."""

    namespace: str = field(init=False)
    name: str = field(init=False)
    mapping: str | None = field(init=False)
    credentials: tuple[str, ...] = field(init=False)
    content: model.SecretContent

    def __post_init__(self) -> None:
        c = self.content
        for key, value in (("namespace", c.namespace), ("name", c.name),
                           ("mapping", c.mapping), ("credentials", c.credentials)):
            object.__setattr__(self, key, value)


@dataclass(frozen=True, slots=True)
class CreateSecret(SecretWrite):
    VERB: ClassVar[str] = "create"
    creates: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class UpdateSecret(SecretWrite):
    """Rewrite a Secret in place (same UID), guarded by its resourceVersion."""

    resource_version: str
    drop_keys: tuple[str, ...] = ()  # observed data keys (all but ours go)
    adopt: bool = False  # taking over a same-named Secret we did not create

    @property
    def verb(self) -> str:
        return "adopt" if self.adopt else "update"


@dataclass(frozen=True, slots=True)
class ReplaceSecret(SecretWrite):
    """Delete and create a managed Secret that cannot change in place: another `type`, or
    `immutable: true` set by someone (docs/configuration.md). Reported with a Warning Event."""

    resource_version: str
    why: str  # "type" or "immutable"
    VERB: ClassVar[str] = "replace"
    writes: ClassVar[int] = 2  # a delete and a create
    creates: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class DeleteSecret(BaseAction):
    resource_version: str
    VERB: ClassVar[str] = "delete"
    removes: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ReleaseSecret(BaseAction):
    """Hand back an adopted Secret instead of deleting it: our label and annotations go."""

    resource_version: str
    VERB: ClassVar[str] = "release"
    removes: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class PatchServiceAccount(BaseAction):
    """Add references to usable Secrets and drop references we added (never others').
    `observed` is the ServiceAccount the change was computed from (None: read it first)."""

    resource_version: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    instance: str = model.DEFAULT_INSTANCE  # whose recorded entries this changes
    observed: model.ServiceAccount | None = None
    kind: ClassVar[str] = "serviceaccount"

    @property
    def verb(self) -> str:
        return "patch" if self.add else "unpatch"

    def _detail(self) -> str:
        return " " + " ".join([f"+{n}" for n in self.add] + [f"-{n}" for n in self.remove])


SecretAction = CreateSecret | UpdateSecret | ReplaceSecret | DeleteSecret | ReleaseSecret
Action = SecretAction | PatchServiceAccount


@dataclass(frozen=True, slots=True)
class SecretConflict:
    """A Secret with our name that we do not manage (and may not adopt)."""

    namespace: str
    name: str
    mapping: str
    uid: str = field(default="", compare=False)  # of their Secret, for the Warning Event
    immutable: bool = False  # adoptExisting, but the data of their Secret cannot change


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


def secret_differs(observed: model.Secret, target: desired.Target, data: bytes, *,
                   instance: str = model.DEFAULT_INSTANCE) -> bool:
    """Whether a managed Secret must be rewritten to match its target (no write otherwise).
    A Secret written before instances existed gains its instance and place once."""
    annotations = observed.annotations
    return (
        observed.digest != model.digest(data)
        or observed.data_keys != (model.DOCKERCONFIG_KEY,)
        or observed.labels.get(model.MANAGED_BY_LABEL) != model.MANAGED_BY_VALUE
        or annotations.get(model.MAPPING_ANNOTATION) != target.mapping
        or annotations.get(model.CREDENTIALS_ANNOTATION) != ",".join(target.credentials)
        or annotations.get(model.INSTANCE_ANNOTATION) != instance
        or annotations.get(model.WRITTEN_AS_ANNOTATION) != f"{target.namespace}/{target.name}"
    )


def _needs_replacing(observed: model.Secret, data: bytes) -> str | None:
    """Why a managed Secret cannot be brought in line in place, if it cannot."""
    if observed.type != model.SECRET_TYPE:
        return "type"  # a Secret's type is immutable
    if observed.immutable and (observed.digest != model.digest(data)
                               or observed.data_keys != (model.DOCKERCONFIG_KEY,)):
        return "immutable"
    return None


def secret_actions(
    target: desired.Target,
    observed: model.Secret | None,
    conflicts: list[SecretConflict],
    blocked: list[Blocked],
    *,
    instance: str = model.DEFAULT_INSTANCE,
) -> tuple[list[SecretAction], bool]:
    """Actions for one target Secret, and whether it will exist afterwards for SAs to use.

    A Secret there that this installation did not write there (unlabelled, a user's copy,
    another installation's) is a conflict, unless `adoptExisting` takes it over (not another
    installation's)."""
    data = target.rendered.data
    if observed is not None and not model.owned_by(observed, instance):
        if (not target.adopt or observed.type != model.SECRET_TYPE  # type is immutable
                or model.foreign(observed, instance)):
            conflicts.append(SecretConflict(target.namespace, target.name, target.mapping,
                                            observed.uid))
            return [], False
        if data is None:
            blocked.append(Blocked(target.namespace, target.name, target.mapping,
                                   target.rendered.missing))
            return [], False
        if _needs_replacing(observed, data) == "immutable":  # the write would be refused (422)
            conflicts.append(SecretConflict(target.namespace, target.name, target.mapping,
                                            observed.uid, immutable=True))
            return [], False
        return [UpdateSecret(_content(target, data, instance, adopted=True),
                             observed.resource_version, drop_keys=observed.data_keys,
                             adopt=True, observed_uid=observed.uid)], True
    if data is None:
        if observed is None:
            blocked.append(Blocked(target.namespace, target.name, target.mapping,
                                   target.rendered.missing))
            return [], False
        return [], True  # keep the last good Secret exactly as it is
    if observed is None:
        return [CreateSecret(_content(target, data, instance))], True
    why = _needs_replacing(observed, data)
    if why is not None:
        return [ReplaceSecret(_content(target, data, instance, adopted=model.adopted(observed)),
                              observed.resource_version, why, observed_uid=observed.uid)], True
    if secret_differs(observed, target, data, instance=instance):
        return [UpdateSecret(_content(target, data, instance), observed.resource_version,
                             drop_keys=observed.data_keys, observed_uid=observed.uid)], True
    return [], True


def _content(target: desired.Target, data: bytes, instance: str, *,
             adopted: bool = False) -> model.SecretContent:
    return model.SecretContent(namespace=target.namespace, name=target.name,
                               mapping=target.mapping, credentials=target.credentials, data=data,
                               instance=instance, adopted=adopted)


def prune_action(secret: model.Secret) -> DeleteSecret | ReleaseSecret:
    """Remove a Secret of ours: delete it, or hand it back if we adopted it."""
    mapping = secret.annotations.get(model.MAPPING_ANNOTATION)
    creds = model.split_names(secret.annotations.get(model.CREDENTIALS_ANNOTATION))
    kind = ReleaseSecret if model.adopted(secret) else DeleteSecret
    return kind(secret.namespace, secret.name, secret.resource_version, mapping=mapping,
                credentials=creds, observed_uid=secret.uid)


def _prunes(cfg: config.Config, mapping_name: str | None) -> bool:
    """`prune` of the named mapping; the default when the config has no such mapping."""
    return next((m.prune for m in cfg.mappings if m.name == mapping_name), cfg.defaults.prune)


def diff(cfg: config.Config, want: desired.Desired, view: model.ClusterView) -> Plan:
    """Compare desired with observed and list only the writes that change something."""
    by_ns: dict[str, list[desired.Target]] = defaultdict(list)
    for target in want.targets.values():
        by_ns[target.namespace].append(target)
    instance = cfg.instance
    managed_by_ns: dict[str, list[model.Secret]] = defaultdict(list)  # ours only
    for secret in view.secrets.values():
        if model.owned_by(secret, instance) and want.in_scope(secret.namespace):
            managed_by_ns[secret.namespace].append(secret)

    actions: list[Action] = []
    conflicts: list[SecretConflict] = []
    blocked: list[Blocked] = []
    # Also visit namespaces where only our SA bookkeeping is left (Secret gone, no target).
    with_refs = {ns for ns, accounts in view.service_accounts.items()
                 if want.in_scope(ns) and any(model.added_by(a, instance)
                                              for a in accounts.values())}
    for ns_name in sorted(set(by_ns) | set(managed_by_ns) | with_refs):
        ns = view.namespaces.get(ns_name)
        if ns is None or ns.terminating:
            continue  # vanished or going away: hands off
        targets = by_ns.get(ns_name, [])
        usable: set[str] = set()
        secret_writes: list[SecretAction] = []
        for target in targets:
            acts, exists = secret_actions(
                target, view.secrets.get((ns_name, target.name)), conflicts, blocked,
                instance=instance)
            secret_writes.extend(acts)
            if exists:
                usable.add(target.name)
        prunable = [
            s for s in managed_by_ns.get(ns_name, [])
            if (ns_name, s.name) not in want.targets
            and _prunes(cfg, s.annotations.get(model.MAPPING_ANNOTATION))
        ]
        sa_actions = _service_account_actions(
            cfg, targets, usable, {s.name for s in prunable},
            {s.name for s in managed_by_ns.get(ns_name, [])},
            view.service_accounts.get(ns_name, {}),
        )
        actions.extend(secret_writes)
        actions.extend(a for a in sa_actions if a.add)
        actions.extend(a for a in sa_actions if not a.add)
        actions.extend(prune_action(s) for s in sorted(prunable, key=lambda s: s.name))
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
        mine = model.added_by(sa, cfg.instance)
        add = tuple(
            t.name for t in targets
            if t.selects_service_account(sa.name) and t.name in usable and t.name not in present
        )
        remove: list[str] = []
        for name in mine:
            target = wanted.get(name)
            if target is not None:
                if not target.selects_service_account(sa.name) and _prunes(cfg, target.mapping):
                    remove.append(name)
            elif name in pruned_secrets or (name not in managed and cfg.defaults.prune):
                remove.append(name)
        if not add and not remove:
            continue
        out.append(PatchServiceAccount(sa.namespace, sa.name, sa.resource_version, add=add,
                                       remove=tuple(remove), instance=cfg.instance,
                                       observed=sa, observed_uid=sa.uid))
    return out


def service_account_change(
    sa: model.ServiceAccount, *, add: tuple[str, ...], remove: tuple[str, ...],
    instance: str = model.DEFAULT_INSTANCE,
) -> model.ServiceAccountChange | None:
    """The change that adds `add` and drops `remove` (only names `instance` recorded) from a
    ServiceAccount's imagePullSecrets, keeping every other entry, its order and every other
    installation's record; None if nothing changes. Valid only at the observed resourceVersion:
    the list is atomic, so without that precondition a concurrent writer's entry could be lost."""
    current = list(sa.image_pull_secrets)
    mine = model.added_by(sa, instance)
    dropping = {n for n in remove if n in mine}
    others = {name for inst, name in map(model.parse_item, sa.ours) if inst != instance}
    new = [n for n in current if n not in dropping or n in others]
    appended = [n for n in dict.fromkeys(add) if n not in new]
    new.extend(appended)
    ours = [item for item in sa.ours if model.parse_item(item) not in
            {(instance, n) for n in dropping}]
    ours.extend(item for n in appended
                if (item := model.entry_item(instance, n)) not in ours)
    if new == current and ours == list(sa.ours):
        return None
    return model.ServiceAccountChange(
        namespace=sa.namespace, name=sa.name, resource_version=sa.resource_version,
        image_pull_secrets=tuple(new) if new != current else None,
        ours=tuple(ours) if ours != list(sa.ours) else None,
        has_annotations=sa.has_annotations,
        track_fields=not sa.tracked and bool(appended))
