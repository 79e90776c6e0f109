"""Small, typed records of the cluster as the syncer sees it, what it writes, and the names it uses.

`syncer.kube` produces and consumes these (from and to API JSON); `desired`, `plan`, `reconcile`
and `run` work on them only. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "pullsecret-syncer"
MAPPING_ANNOTATION = "pullsecret-syncer.io/mapping"
CREDENTIALS_ANNOTATION = "pullsecret-syncer.io/credentials"
SA_ANNOTATION = "pullsecret-syncer.io/image-pull-secrets"
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


@dataclass(frozen=True, slots=True)
class Secret:
    """A Secret that either carries our label or has a name one of our mappings wants."""

    namespace: str
    name: str
    managed: bool
    type: str
    data: bytes | None = field(repr=False)  # decoded .dockerconfigjson, None when absent
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
    ours: tuple[str, ...]  # names our annotation says we added
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


@dataclass(frozen=True, slots=True)
class SecretContent:
    """What we write into one managed Secret: the rendered data and our bookkeeping."""

    namespace: str
    name: str
    mapping: str
    credentials: tuple[str, ...]
    data: bytes = field(repr=False)  # the .dockerconfigjson bytes


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
