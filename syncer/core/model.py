"""Small, typed records of the cluster as the syncer sees it, what it writes, and the names it uses.

`syncer.kube` produces and consumes these (from and to API JSON); `desired`, `plan`, `reconcile`
and `run` work on them only. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "pullsecret-syncer"
MAPPING_ANNOTATION = "pullsecret-syncer.io/mapping"
CREDENTIALS_ANNOTATION = "pullsecret-syncer.io/credentials"
SA_ANNOTATION = "pullsecret-syncer.io/image-pull-secrets"
INSTANCE_ANNOTATION = "pullsecret-syncer.io/instance"
WRITTEN_AS_ANNOTATION = "pullsecret-syncer.io/written-as"  # "<namespace>/<name>" we wrote
ADOPTED_ANNOTATION = "pullsecret-syncer.io/adopted"  # "true": handed back, never deleted
OUR_ANNOTATIONS = (MAPPING_ANNOTATION, CREDENTIALS_ANNOTATION, INSTANCE_ANNOTATION,
                   WRITTEN_AS_ANNOTATION, ADOPTED_ANNOTATION)
DEFAULT_INSTANCE = "default"
SECRET_TYPE = "kubernetes.io/dockerconfigjson"  # noqa: S105 - a type name
DOCKERCONFIG_KEY = ".dockerconfigjson"
FIELD_MANAGER = "pullsecret-syncer"  # our name in metadata.managedFields
RESERVED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    terminating: bool = False
    uid: str = ""
    resource_version: str = ""

    @property
    def namespace(self) -> str:
        """Cluster-scoped: "" (as its metadata.namespace), so every record has a place."""
        return ""


@dataclass(frozen=True, slots=True)
class Secret:
    """A Secret that either carries our label or has a name one of our mappings wants.

    `managed` says only that it carries our label, which anyone can copy: `owned_by` says whether
    an installation wrote it where it stands. Of the data only a digest is kept: a pass needs no
    more to compare, and a cache of Secrets that others labelled stays small whatever their size.
    """

    namespace: str
    name: str
    managed: bool
    type: str
    digest: str | None = field(repr=False)  # of the decoded .dockerconfigjson, None when absent
    data_keys: tuple[str, ...]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    resource_version: str
    uid: str = ""
    immutable: bool = False  # `immutable: true`: data can only change by delete + create


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    namespace: str
    name: str
    image_pull_secrets: tuple[str, ...]  # names, in order, as the API holds them
    ours: tuple[str, ...]  # items of our annotation, every installation's (see `added_by`)
    resource_version: str
    uid: str = ""
    has_annotations: bool = True  # whether metadata.annotations exists (JSON-patch paths need it)
    # The field manager that last changed `imagePullSecrets` (from metadata.managedFields): who
    # took our entry out when a revision lacks it. "" when unknown.
    pull_secrets_writer: str = ""
    # Whether metadata.managedFields is kept for it: the apiserver never starts tracking fields
    # on an update of an object that has none (a `default` ServiceAccount made by the
    # controller-manager), so our first write starts it (see `ServiceAccountChange`).
    tracked: bool = True


@dataclass(frozen=True, slots=True)
class Lease:
    """A `coordination.k8s.io/v1` Lease as leader election needs it (times as RFC 3339 text)."""

    namespace: str
    name: str
    holder: str | None = None
    duration_seconds: int | None = None
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class Pod:
    """A Pending Pod, with only what the recycling decision needs (a thousand stay small)."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    service_account: str
    image_pull_secrets: tuple[str, ...]  # names, as the Pod was admitted with them
    has_controller: bool  # an owner reference with `controller: true` (it will be recreated)
    phase: str
    waiting: tuple[tuple[str, str], ...] = ()  # (image, reason) of waiting (init) containers
    terminating: bool = False  # deletionTimestamp set
    controller_kind: str = ""  # "Job", "ReplicaSet", … of that owner reference


@dataclass(frozen=True, slots=True)
class Event:
    """A core/v1 Event, as `plan` reads back what the daemon reported (times as RFC 3339)."""

    namespace: str
    name: str
    reason: str
    message: str
    object_kind: str
    object_name: str
    component: str  # source.component (reportingComponent when that is empty)
    last_seen: str  # lastTimestamp, else eventTime, else firstTimestamp
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class SecretContent:
    """What we write into one managed Secret: the rendered data and our bookkeeping."""

    namespace: str
    name: str
    mapping: str
    credentials: tuple[str, ...]
    data: bytes = field(repr=False)  # the .dockerconfigjson bytes
    instance: str = DEFAULT_INSTANCE
    adopted: bool = False  # taken over with adoptExisting: handed back, not deleted

    def annotations(self) -> dict[str, str]:
        """Our annotations on the Secret (the adopted mark is written once, at adoption)."""
        out = {MAPPING_ANNOTATION: self.mapping,
               CREDENTIALS_ANNOTATION: ",".join(self.credentials),
               INSTANCE_ANNOTATION: self.instance,
               WRITTEN_AS_ANNOTATION: f"{self.namespace}/{self.name}"}
        if self.adopted:
            out[ADOPTED_ANNOTATION] = "true"
        return out


@dataclass(frozen=True, slots=True)
class ServiceAccountChange:
    """A precondition-guarded change of one ServiceAccount: its new `imagePullSecrets` names
    and our annotation (None: leave as is), valid only at `resource_version`."""

    namespace: str
    name: str
    resource_version: str
    image_pull_secrets: tuple[str, ...] | None
    ours: tuple[str, ...] | None  # () removes the annotation
    has_annotations: bool  # whether metadata.annotations exists (JSON-patch paths need it)
    track_fields: bool = False  # seed metadata.managedFields, so that writers can be told apart


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object a Warning Event is about."""

    kind: str  # Secret, ServiceAccount, Namespace, Pod
    namespace: str
    name: str
    uid: str = ""


def digest(data: bytes) -> str:
    """What `Secret.digest` holds for `data` (compared, never written anywhere)."""
    return hashlib.sha256(data).hexdigest()


def instance_of(secret: Secret) -> str:
    """The installation a labelled Secret names (written before instances existed: `default`)."""
    return secret.annotations.get(INSTANCE_ANNOTATION) or DEFAULT_INSTANCE


def is_copy(secret: Secret) -> bool:
    """A Secret that stands elsewhere than where it was written: a user copied ours (`kubectl
    get -o yaml | kubectl apply -n other -f -`, or under another name). Not ours."""
    written = secret.annotations.get(WRITTEN_AS_ANNOTATION)
    return written is not None and written != f"{secret.namespace}/{secret.name}"


def owned_by(secret: Secret, instance: str | None) -> bool:
    """Whether installation `instance` (None: any) wrote this Secret where it stands."""
    return secret.managed and not is_copy(secret) and (
        instance is None or instance_of(secret) == instance)


def foreign(secret: Secret, instance: str) -> bool:
    """Written where it stands by another installation: never ours to take, even to adopt."""
    return owned_by(secret, None) and not owned_by(secret, instance)


def adopted(secret: Secret) -> bool:
    return secret.annotations.get(ADOPTED_ANNOTATION) == "true"


# ServiceAccount bookkeeping: one annotation lists the entries every installation added, each
# item `name` (instance `default`, the format from before instances) or `instance:name`.


def entry_item(instance: str, name: str) -> str:
    return name if instance == DEFAULT_INSTANCE else f"{instance}:{name}"


def parse_item(item: str) -> tuple[str, str]:
    """(instance, name) of one recorded item."""
    instance, sep, name = item.rpartition(":")
    return (instance, name) if sep and instance else (DEFAULT_INSTANCE, item)


def added_by(sa: ServiceAccount, instance: str | None) -> tuple[str, ...]:
    """The `imagePullSecrets` names installation `instance` (None: any) recorded on `sa`."""
    names = [name for inst, name in map(parse_item, sa.ours)
             if instance is None or inst == instance]
    return tuple(dict.fromkeys(names))


def instances_on(sa: ServiceAccount) -> tuple[str, ...]:
    return tuple(sorted({inst for inst, _ in map(parse_item, sa.ours)}))


def split_names(value: str | None) -> tuple[str, ...]:
    """Parse a comma-separated annotation value into names (empty entries dropped)."""
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What one pass reads from the cluster (or what the watch caches hold)."""

    namespaces: Mapping[str, Namespace]
    secrets: Mapping[tuple[str, str], Secret]
    service_accounts: Mapping[str, Mapping[str, ServiceAccount]]  # namespace -> name -> SA
