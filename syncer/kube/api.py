"""`ClusterAPI`: the one typed boundary between the syncer and a Kubernetes cluster.

Everything above it (reconcile passes, watch caches, leader election) speaks only the records of
`syncer.core.model`; below it sit the real client (`syncer.kube.client`, the only importer of
`kubernetes`) and the in-memory `syncer.kube.fake.FakeCluster`. Both raise only
`syncer.kube.errors`. A contract suite (`tests/contract/`) runs the same cases on both.

Shaped after client-go's `tools/cache`: an informer needs a `list` and a `watch` of one `Kind` —
nothing else — and leader election needs three Lease verbs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from syncer.core import model

R = TypeVar("R")
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


class ClusterAPI(Protocol):
    """What the syncer needs of a cluster. Every method raises only `syncer.kube.errors`."""

    def list(self, kind: Kind[R], *, selector: Selector = EVERYTHING) -> Listing[R]:
        """Every object of `kind` matching `selector`, across namespaces (paged as needed)."""
        ...

    def watch(self, kind: Kind[R], *, resource_version: str, timeout_seconds: int,
              selector: Selector = EVERYTHING) -> Iterator[WatchEvent[R]]:
        """Changes after `resource_version` until the server ends the watch; raises
        `errors.Gone` when that version is too old (re-list), other errors on a cut."""
        ...

    def get_secret(self, namespace: str, name: str) -> model.Secret: ...

    def get_service_account(self, namespace: str, name: str) -> model.ServiceAccount: ...

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

    def patch_service_account(self, change: model.ServiceAccountChange,
                              ) -> model.ServiceAccount:
        """Apply `change` only if the ServiceAccount is still at its resourceVersion (Conflict
        otherwise): `imagePullSecrets` is an atomic list, so nothing else is safe."""
        ...

    def evict_pod(self, namespace: str, name: str, *, uid: str = "") -> None:
        """Evict a Pod through the Eviction API (policy/v1), so PodDisruptionBudgets hold:
        TooManyRequests when a budget refuses, NotFound when it is gone, Conflict when `uid`
        is given and the Pod of that name is another one by now."""
        ...

    def get_lease(self, namespace: str, name: str) -> model.Lease: ...

    def create_lease(self, lease: model.Lease) -> model.Lease:
        """AlreadyExists when someone created it first."""
        ...

    def update_lease(self, lease: model.Lease) -> model.Lease:
        """Conflict unless the Lease is still at `lease.resource_version`."""
        ...

    def record_event(self, ref: model.ObjectRef, *, reason: str, message: str) -> None:
        """A Warning Event about `ref`; best effort (failures are logged, never raised)."""
        ...

    def close(self) -> None: ...
