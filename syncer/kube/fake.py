"""`FakeCluster`: an in-memory `ClusterAPI` with the apiserver's semantics, for fast tests.

What it keeps from the real thing (the contract suite in `tests/contract/` runs the same cases on
both): one resourceVersion counter across kinds; 409 on a stale update or delete precondition,
Conflict on a ServiceAccount change at a stale version (the real server's failed JSON-patch
`test`, 422); AlreadyExists on create; NotFound for missing objects and namespaces;
NamespaceTerminating for writes into a terminating namespace; 422 Invalid for a data change of an
immutable Secret or a type change; `Gone` for a watch from a compacted version; Pod eviction with
the PodDisruptionBudget rule of kube-apiserver 1.37 (`pkg/registry/core/pod/storage/
eviction.go`): a Pod that is not running — Pending, finished, or already terminating — is evicted
whatever its budget says; a running Pod that a budget with no disruptions left covers is refused
with 429.

What it adds: `fault`, called with every request before it is served (raise a
`syncer.kube.errors` error from it to inject a fault); `requests`, served requests by `"VERB
kind"`; `events`, the Warning Events recorded; test-side helpers (`add_namespace`, `put_secret`,
`add_pod`, `compact`, `end_watches`, …) that change the cluster uncounted, as another writer, a
controller or the kubelet would.

Records live in one generic store (`syncer.kube.fakestore`). One convenience differs on purpose:
`watch(..., timeout_seconds=0)` delivers what is pending and ends at once, so a test can step a
watch without threads. Production code never passes 0.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from syncer.core import model
from syncer.kube import api, errors, fakestore

MAX_SECRET_BYTES = 1024 * 1024
LEASES: api.Kind[model.Lease] = api.Kind("leases")  # not listed by the syncer: the fake's own
BUDGET_IGNORED = frozenset({"Pending", "Succeeded", "Failed"})
REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


@dataclass(frozen=True, slots=True)
class Request:
    verb: str  # GET, LIST, WATCH, POST, PATCH, PUT, DELETE
    kind: str  # namespaces, serviceaccounts, secrets, leases, events, pods, pods/eviction
    namespace: str = ""
    name: str = ""


class FakeCluster:
    """`api.ClusterAPI` in memory. Thread-safe."""

    def __init__(self) -> None:
        self._store = fakestore.Store()
        self._cond = self._store.cond
        self._budgets: set[tuple[str, str]] = set()  # Pods a PDB (maxUnavailable: 0) covers
        self.fault: Callable[[Request], None] | None = None
        self.requests: Counter[str] = Counter()
        self.events: list[tuple[model.ObjectRef, str, str]] = []

    # ---- bookkeeping -------------------------------------------------------------------------
    def _serve(self, verb: str, kind: str, namespace: str = "", name: str = "") -> None:
        request = Request(verb, kind, namespace, name)
        if self.fault is not None:
            self.fault(request)
        self.requests[f"{verb} {kind}"] += 1

    def writes(self) -> int:
        """Served write requests to Secrets and ServiceAccounts (what --kube-qps limits)."""
        return sum(n for k, n in self.requests.items()
                   if k.split()[0] in ("POST", "PATCH", "PUT", "DELETE")
                   and k.split()[1] in ("secrets", "serviceaccounts"))

    def _writable_namespace(self, namespace: str) -> None:
        ns = self._store.get(api.NAMESPACES, "", namespace)
        if ns is None:
            raise errors.NotFound(f"namespace {namespace}: 404 NotFound", status=404)
        if ns.terminating:
            raise errors.NamespaceTerminating(
                f"namespace {namespace}: 403 Forbidden: is being terminated", status=403)

    def _existing(self, kind: api.Kind[api.R], namespace: str, name: str) -> api.R:
        record = self._store.get(kind, namespace, name)
        if record is None:
            raise errors.NotFound(f"{kind.name} {namespace}/{name}: 404 NotFound", status=404,
                                  reason="NotFound")
        return record

    @staticmethod
    def _precondition(record: api.Record, resource_version: str, what: str) -> None:
        if resource_version and record.resource_version != resource_version:
            raise errors.Conflict(f"{what}: 409 Conflict", status=409, reason="Conflict")

    # ---- ClusterAPI: list and watch ----------------------------------------------------------
    def list(self, kind: api.Kind[api.R], *,
             selector: api.Selector = api.EVERYTHING) -> api.Listing[api.R]:
        with self._cond:
            self._serve("LIST", kind.name)
            return api.Listing(tuple(self._store.select(kind, selector)),
                               str(self._store.last_rv))

    def watch(self, kind: api.Kind[api.R], *, resource_version: str, timeout_seconds: int,
              selector: api.Selector = api.EVERYTHING) -> Iterator[api.WatchEvent[api.R]]:
        with self._cond:
            self._serve("WATCH", kind.name)
            since, generation = self._store.open_watch(kind, resource_version)
        yield from self._store.stream(kind, since=since, generation=generation,
                                      timeout_seconds=timeout_seconds, selector=selector)

    # ---- ClusterAPI: reads -------------------------------------------------------------------
    def get_secret(self, namespace: str, name: str) -> model.Secret:
        with self._cond:
            self._serve("GET", "secrets", namespace, name)
            return self._existing(api.SECRETS, namespace, name)

    def get_service_account(self, namespace: str, name: str) -> model.ServiceAccount:
        with self._cond:
            self._serve("GET", "serviceaccounts", namespace, name)
            return self._existing(api.SERVICE_ACCOUNTS, namespace, name)

    # ---- ClusterAPI: writes ------------------------------------------------------------------
    def create_secret(self, content: model.SecretContent) -> model.Secret:
        ns, name = content.namespace, content.name
        with self._cond:
            self._serve("POST", "secrets", ns, name)
            self._writable_namespace(ns)
            if self._store.get(api.SECRETS, ns, name) is not None:
                raise errors.AlreadyExists(f"POST secrets {ns}/{name}: 409 AlreadyExists",
                                           status=409, reason="AlreadyExists")
            self._check_size(content)
            record = model.Secret(
                namespace=ns, name=name, managed=True, type=model.SECRET_TYPE,
                digest=model.digest(content.data), data_keys=(model.DOCKERCONFIG_KEY,),
                labels={model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE},
                annotations=content.annotations(), resource_version="",
                uid=self._store.new_uid())
            return self._store.put(api.SECRETS, record, "ADDED")

    def update_secret(self, content: model.SecretContent, *, resource_version: str,
                      drop_keys: tuple[str, ...]) -> model.Secret:
        ns, name = content.namespace, content.name
        with self._cond:
            self._serve("PATCH", "secrets", ns, name)
            self._writable_namespace(ns)
            old = self._existing(api.SECRETS, ns, name)
            self._precondition(old, resource_version, f"PATCH secrets {ns}/{name}")
            if old.type != model.SECRET_TYPE:
                raise errors.Invalid(f"PATCH secrets {ns}/{name}: 422 Invalid: invalid fields: "
                                     "type", status=422, reason="Invalid")
            if old.immutable and old.digest != model.digest(content.data):
                raise errors.Invalid(f"PATCH secrets {ns}/{name}: 422 Invalid: invalid fields: "
                                     "data", status=422, reason="Invalid")
            self._check_size(content)
            keys = {k for k in old.data_keys if k not in drop_keys} | {model.DOCKERCONFIG_KEY}
            record = dataclasses.replace(
                old, managed=True, digest=model.digest(content.data),
                data_keys=tuple(sorted(keys)),
                labels={**old.labels, model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE},
                annotations={**old.annotations, **content.annotations()})
            return self._store.put(api.SECRETS, record, "MODIFIED")

    def delete_secret(self, namespace: str, name: str, *, resource_version: str) -> None:
        with self._cond:
            self._serve("DELETE", "secrets", namespace, name)
            old = self._store.get(api.SECRETS, namespace, name)
            if old is None:
                return
            self._precondition(old, resource_version, f"DELETE secrets {namespace}/{name}")
            self._store.delete(api.SECRETS.name, old)

    def release_secret(self, namespace: str, name: str, *, resource_version: str,
                       ) -> model.Secret:
        with self._cond:
            self._serve("PATCH", "secrets", namespace, name)
            self._writable_namespace(namespace)
            old = self._existing(api.SECRETS, namespace, name)
            self._precondition(old, resource_version, f"PATCH secrets {namespace}/{name}")
            record = dataclasses.replace(
                old, managed=False,
                labels={k: v for k, v in old.labels.items() if k != model.MANAGED_BY_LABEL},
                annotations={k: v for k, v in old.annotations.items()
                             if k not in model.OUR_ANNOTATIONS})
            return self._store.put(api.SECRETS, record, "MODIFIED")

    def patch_service_account(self, change: model.ServiceAccountChange,
                              ) -> model.ServiceAccount:
        ns, name = change.namespace, change.name
        with self._cond:
            self._serve("PATCH", "serviceaccounts", ns, name)
            self._writable_namespace(ns)
            old = self._existing(api.SERVICE_ACCOUNTS, ns, name)
            if old.resource_version != change.resource_version:
                raise errors.Conflict(f"PATCH serviceaccounts {ns}/{name}: 422 Invalid: testing "
                                      "value /metadata/resourceVersion failed", status=422)
            record = old
            if change.image_pull_secrets is not None:
                record = dataclasses.replace(record, image_pull_secrets=change.image_pull_secrets,
                                             pull_secrets_writer=model.FIELD_MANAGER)
            if change.ours is not None:
                record = dataclasses.replace(record, ours=change.ours, has_annotations=bool(
                    change.ours) or (old.has_annotations and not old.ours))
            return self._store.put(api.SERVICE_ACCOUNTS, record, "MODIFIED")

    def evict_pod(self, namespace: str, name: str, *, uid: str = "") -> None:
        what = f"POST pods/eviction {namespace}/{name}"
        with self._cond:
            self._serve("POST", "pods/eviction", namespace, name)
            pod = self._store.get(api.PODS, namespace, name)
            if pod is None:
                raise errors.NotFound(f"{what}: 404 NotFound", status=404, reason="NotFound")
            if uid and pod.uid != uid:
                raise errors.Conflict(f"{what}: 409 Conflict: the UID in the precondition does "
                                      "not match", status=409, reason="Conflict")
            if ((namespace, name) in self._budgets and pod.phase not in BUDGET_IGNORED
                    and not pod.terminating):
                raise errors.TooManyRequests(f"{what}: 429 TooManyRequests: {REFUSED}",
                                             status=429, reason="TooManyRequests")
            # Not bound to a node (no kubelet to wait for): deleted at once, like the apiserver.
            self._store.delete(api.PODS.name, pod)

    # ---- ClusterAPI: leases and events ---------------------------------------------------------
    def get_lease(self, namespace: str, name: str) -> model.Lease:
        with self._cond:
            self._serve("GET", "leases", namespace, name)
            return self._existing(LEASES, namespace, name)

    def create_lease(self, lease: model.Lease) -> model.Lease:
        with self._cond:
            self._serve("POST", "leases", lease.namespace, lease.name)
            self._writable_namespace(lease.namespace)
            if self._store.get(LEASES, lease.namespace, lease.name) is not None:
                raise errors.AlreadyExists("POST leases: 409 AlreadyExists", status=409,
                                           reason="AlreadyExists")
            return self._store.put(LEASES, lease, "ADDED")

    def update_lease(self, lease: model.Lease) -> model.Lease:
        with self._cond:
            self._serve("PUT", "leases", lease.namespace, lease.name)
            old = self._existing(LEASES, lease.namespace, lease.name)
            if old.resource_version != lease.resource_version:
                raise errors.Conflict("PUT leases: 409 Conflict", status=409, reason="Conflict")
            return self._store.put(LEASES, lease, "MODIFIED")

    def record_event(self, ref: model.ObjectRef, *, reason: str, message: str) -> None:
        with self._cond:
            try:
                self._serve("POST", "events", ref.namespace, ref.name)
            except errors.KubeError:
                return  # best effort, like the real client
            self.events.append((ref, reason, message))
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._store.put(api.EVENTS, model.Event(
                namespace=ref.namespace or "default", name=f"{ref.name}.{len(self.events)}",
                reason=reason, message=message, object_kind=ref.kind, object_name=ref.name,
                component="pullsecret-syncer", last_seen=now), "ADDED")

    def close(self) -> None:
        return

    @staticmethod
    def _check_size(content: model.SecretContent) -> None:
        if len(content.data) * 4 // 3 > MAX_SECRET_BYTES:
            raise errors.Invalid(f"secrets {content.namespace}/{content.name}: 422 Invalid: "
                                 "invalid fields: data", status=422, reason="Invalid")

    # ---- test side: other writers, controllers, the server's housekeeping ----------------------
    def add_namespace(self, name: str, *, labels: dict[str, str] | None = None,
                      ) -> model.Namespace:
        return self._store.put(api.NAMESPACES, model.Namespace(
            name=name, labels=dict(labels or {}), uid=self._store.new_uid()), "ADDED")

    def relabel_namespace(self, name: str, labels: dict[str, str]) -> None:
        with self._cond:
            old = self._existing(api.NAMESPACES, "", name)
            self._store.put(api.NAMESPACES, dataclasses.replace(old, labels=dict(labels)),
                            "MODIFIED")

    def terminate_namespace(self, name: str) -> None:
        """The namespace starts terminating (its objects stay until `delete_namespace`)."""
        with self._cond:
            old = self._existing(api.NAMESPACES, "", name)
            self._store.put(api.NAMESPACES, dataclasses.replace(old, terminating=True),
                            "MODIFIED")

    def delete_namespace(self, name: str) -> None:
        """The namespace and everything in it are gone (what the namespace controller does)."""
        with self._cond:
            for kind, record in self._store.in_namespace(name):
                self._store.delete(kind, record)
            self.remove(api.NAMESPACES.name, "", name)

    def put_service_account(self, namespace: str, name: str, *,
                            image_pull_secrets: tuple[str, ...] = (),
                            ours: tuple[str, ...] = (),
                            manager: str = "kubectl") -> model.ServiceAccount:
        """Create or overwrite a ServiceAccount as another writer (field manager) would."""
        with self._cond:
            old = self._store.get(api.SERVICE_ACCOUNTS, namespace, name)
            record = model.ServiceAccount(
                namespace=namespace, name=name, image_pull_secrets=image_pull_secrets,
                ours=ours, resource_version="", has_annotations=bool(ours),
                pull_secrets_writer=manager,
                uid=old.uid if old is not None else self._store.new_uid())
            return self._store.put(api.SERVICE_ACCOUNTS, record,
                                   "ADDED" if old is None else "MODIFIED")

    def put_secret(self, record: model.Secret) -> model.Secret:
        """Create or overwrite a Secret as another writer would (ours or not: its labels say)."""
        with self._cond:
            old = self._store.get(api.SECRETS, record.namespace, record.name)
            if not record.uid:
                record = dataclasses.replace(
                    record, uid=old.uid if old is not None else self._store.new_uid())
            return self._store.put(api.SECRETS, record, "ADDED" if old is None else "MODIFIED")

    def add_pod(self, namespace: str, name: str, *, service_account: str = "default",
                image_pull_secrets: tuple[str, ...] | None = None, controller: bool = True,
                phase: str = "Pending", controller_kind: str = "ReplicaSet",
                waiting: tuple[tuple[str, str], ...] = ()) -> model.Pod:
        """Create a Pod as a controller would. Like the ServiceAccount admission plugin, a Pod
        without imagePullSecrets of its own (None) gets its ServiceAccount's, as they are now."""
        with self._cond:
            if image_pull_secrets is None:
                sa = self._store.get(api.SERVICE_ACCOUNTS, namespace, service_account)
                image_pull_secrets = sa.image_pull_secrets if sa is not None else ()
            return self._store.put(api.PODS, model.Pod(
                namespace=namespace, name=name, uid=self._store.new_uid(),
                resource_version="", service_account=service_account,
                image_pull_secrets=image_pull_secrets, has_controller=controller, phase=phase,
                waiting=waiting, controller_kind=controller_kind if controller else ""), "ADDED")

    def set_pod_status(self, namespace: str, name: str, *, phase: str | None = None,
                       waiting: tuple[tuple[str, str], ...] | None = None) -> model.Pod:
        """Write a Pod's status as the kubelet would: its phase, its waiting containers
        (image, reason) — e.g. `(("ghcr.io/org/app:1", "ImagePullBackOff"),)`."""
        with self._cond:
            old = self._existing(api.PODS, namespace, name)
            return self._store.put(api.PODS, dataclasses.replace(
                old, phase=old.phase if phase is None else phase,
                waiting=old.waiting if waiting is None else waiting), "MODIFIED")

    def protect_pod(self, namespace: str, name: str) -> None:
        """A PodDisruptionBudget with `maxUnavailable: 0` covers this Pod from now on."""
        with self._cond:
            self._budgets.add((namespace, name))

    def remove(self, kind: str, namespace: str, name: str) -> None:
        """Delete an object as another writer would (`kind`: its plural name, e.g. "secrets")."""
        with self._cond:
            old = self._store.stored(kind, namespace, name)
            if old is not None:
                self._store.delete(kind, old)

    def stored(self, kind: str, namespace: str, name: str) -> api.Record | None:
        """The current record (None if absent), uncounted."""
        return self._store.stored(kind, namespace, name)

    def bookmark(self, kind: str) -> None:
        """A BOOKMARK on open watches of `kind` (moves their resourceVersion, no record)."""
        self._store.bookmark(kind)

    def compact(self) -> None:
        """Like etcd compaction: watches from any version seen so far get 410 Gone."""
        self._store.compact()

    def end_watches(self, *, error: errors.KubeError | None = None) -> None:
        """End every open watch (the server's timeout), or cut it with `error`."""
        self._store.end_watches(error=error)
