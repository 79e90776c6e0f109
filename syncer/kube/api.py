"""The typed boundary between the syncer and a Kubernetes cluster: records, kinds, and roles.

Everything above it (reconcile passes, watch caches, leader election) speaks only the records of
`syncer.core.model`; below it sit the real client (`syncer.kube.client`, the only importer of
`kubernetes`) and the in-memory `syncer.kube.fake.FakeCluster`. Both raise only
`syncer.kube.errors`. A contract suite (`tests/contract/`) runs the same cases on both.

Shaped after client-go: the cluster is offered as small roles, and each consumer takes only the
roles it uses — an informer a `ListerWatcher` (client-go's `tools/cache`), leader election a
`LeaseLock` (its `resourcelock`), a reconcile pass a `PullSecretWriter` and an `EventRecorder`.
`ClusterAPI` is the union of the roles: what the real client and the fake implement, and what the
composition roots (`run.command` and the daemon it wires, the CLI) hold and hand down.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, Protocol, TypeVar

from syncer.core import model


class Record(Protocol):
    """What every record of `syncer.core.model` that a `Kind` holds has: its place and its
    version (frozen dataclasses, so a store can stamp a new resourceVersion with `replace`)."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[object]]]

    @property
    def namespace(self) -> str:
        """"" for a cluster-scoped object (a Namespace)."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def resource_version(self) -> str: ...


R = TypeVar("R", bound=Record)
EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True, slots=True)
class Kind(Generic[R]):
    """A resource that can be listed and watched across all namespaces, typed by its record."""

    name: str  # the plural resource name: namespaces, serviceaccounts, secrets, pods


NAMESPACES: Kind[model.Namespace] = Kind("namespaces")
SERVICE_ACCOUNTS: Kind[model.ServiceAccount] = Kind("serviceaccounts")
SECRETS: Kind[model.Secret] = Kind("secrets")
PODS: Kind[model.Pod] = Kind("pods")
EVENTS: Kind[model.Event] = Kind("events")  # core/v1; read only by `plan`


@dataclass(frozen=True, slots=True)
class Selector:
    """Label and field selectors in the apiserver's string syntax (`a=b,c=d`)."""

    labels: str | None = None
    fields: str | None = None


EVERYTHING = Selector()
MANAGED = Selector(labels=f"{model.MANAGED_BY_LABEL}={model.MANAGED_BY_VALUE}")
PENDING = Selector(fields="status.phase=Pending")  # Pods not yet running (docs/recycle-pods.md)


def reason(value: str) -> Selector:
    """Events with this reason, in any namespace."""
    return Selector(fields=f"reason={value}")


def named(name: str) -> Selector:
    """Every object called `name`, in any namespace."""
    return Selector(fields=f"metadata.name={name}")


@dataclass(frozen=True, slots=True)
class Listing(Generic[R]):
    """One consistent list and the resourceVersion to watch from."""

    items: tuple[R, ...]
    resource_version: str


@dataclass(frozen=True, slots=True)
class WatchEvent(Generic[R]):
    """One watch event; `record` is None for a BOOKMARK (which only moves resource_version)."""

    type: EventType
    record: R | None
    resource_version: str


# ---- roles: each consumer takes only the ones it uses -----------------------------------------
class Lister(Protocol):
    def list(self, kind: Kind[R], *, selector: Selector = EVERYTHING) -> Listing[R]:
        """Every object of `kind` matching `selector`, across namespaces (paged as needed)."""
        ...


class ListerWatcher(Lister, Protocol):
    """What an informer needs (client-go's `cache.ListerWatcher`)."""

    def watch(self, kind: Kind[R], *, resource_version: str, timeout_seconds: int,
              selector: Selector = EVERYTHING) -> Iterator[WatchEvent[R]]:
        """Changes after `resource_version` until the server ends the watch; raises
        `errors.Gone` when that version is too old (re-list), other errors on a cut."""
        ...


class SecretReader(Protocol):
    def get_secret(self, namespace: str, name: str) -> model.Secret: ...


class SecretWriter(Protocol):
    def create_secret(self, content: model.SecretContent) -> model.Secret:
        """A new managed Secret (AlreadyExists when the name is taken)."""
        ...

    def update_secret(self, content: model.SecretContent, *, resource_version: str,
                      drop_keys: tuple[str, ...]) -> model.Secret:
        """Our label, annotations and data onto the Secret at `resource_version` (Conflict
        when it changed); foreign labels and annotations stay, data keys in `drop_keys` go."""
        ...

    def delete_secret(self, namespace: str, name: str, *, resource_version: str) -> None:
        """Delete if still at `resource_version` (Conflict otherwise); a missing one is fine."""
        ...

    def release_secret(self, namespace: str, name: str, *, resource_version: str,
                       ) -> model.Secret:
        """Hand an adopted Secret back: our label and annotations removed, data kept, if still
        at `resource_version` (Conflict otherwise)."""
        ...


class ServiceAccountPatcher(Protocol):
    """A precondition-guarded patch, and the read that refreshes the precondition after a
    Conflict."""

    def get_service_account(self, namespace: str, name: str) -> model.ServiceAccount: ...

    def patch_service_account(self, change: model.ServiceAccountChange,
                              ) -> model.ServiceAccount:
        """Apply `change` only if the ServiceAccount is still at its resourceVersion (Conflict
        otherwise): `imagePullSecrets` is an atomic list, so nothing else is safe."""
        ...


class PodEvictor(Protocol):
    def evict_pod(self, namespace: str, name: str, *, uid: str = "") -> None:
        """Evict a Pod through the Eviction API (policy/v1), so PodDisruptionBudgets hold:
        TooManyRequests when a budget refuses, NotFound when it is gone, Conflict when `uid`
        is given and the Pod of that name is another one by now."""
        ...


class EventRecorder(Protocol):
    def record_event(self, ref: model.ObjectRef, *, reason: str, message: str) -> None:
        """A Warning Event about `ref`; best effort (failures are logged, never raised)."""
        ...


class LeaseLock(Protocol):
    """What leader election needs (client-go's `resourcelock.Interface`)."""

    def get_lease(self, namespace: str, name: str) -> model.Lease: ...

    def create_lease(self, lease: model.Lease) -> model.Lease:
        """AlreadyExists when someone created it first."""
        ...

    def update_lease(self, lease: model.Lease) -> model.Lease:
        """Conflict unless the Lease is still at `lease.resource_version`."""
        ...


# ---- roles combined, for the consumers that need several ----------------------------------------
class PullSecretWriter(SecretReader, SecretWriter, ServiceAccountPatcher, Protocol):
    """Our Secrets and the ServiceAccounts' `imagePullSecrets`: what `reconcile.apply` writes."""


class PassTarget(PullSecretWriter, EventRecorder, Protocol):
    """What a reconcile pass (`reconcile.engine`) writes and reports to."""


class TeardownTarget(Lister, PullSecretWriter, Protocol):
    """What `uninstall` reads and undoes."""


class PodRecycling(Lister, PodEvictor, Protocol):
    """What one-shot Pod recycling (`reconcile.evict.one_shot`) lists and evicts."""


class PodRecyclingLoop(ListerWatcher, PodEvictor, EventRecorder, Protocol):
    """What the daemon's recycling (`run.recycler`) watches, evicts and reports to."""


class ClusterAPI(ListerWatcher, PullSecretWriter, PodEvictor, EventRecorder, LeaseLock,
                 Protocol):
    """Every role: what the real client and the fake implement and the composition roots
    hold. Every method raises only `syncer.kube.errors`."""

    def close(self) -> None: ...
