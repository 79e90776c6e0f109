"""`FakeCluster`: an in-memory `ClusterAPI` with the apiserver's semantics, for fast tests.

What it keeps from the real thing (the contract suite in `tests/contract/` runs the same cases on
both): one resourceVersion counter across kinds; 409 on a stale update or delete precondition,
Conflict on a ServiceAccount change at a stale version (the real server's failed JSON-patch
`test`, 422); AlreadyExists on create; NotFound for missing objects and namespaces;
NamespaceTerminating for writes into a terminating namespace; 422 Invalid for a data change of an
immutable Secret or a type change; `Gone` for a watch from a compacted version.

What it adds: `fault`, called with every request before it is served (raise a
`syncer.kube.errors` error from it to inject a fault); `requests`, served requests by `"VERB
kind"`; `events`, the Warning Events recorded; test-side helpers (`add_namespace`, `put_secret`,
`compact`, `end_watches`, …) that change the cluster uncounted, as another writer would.

Pods, evictions and selectors: `syncer.kube.fakepods`. One convenience differs on purpose:
`watch(..., timeout_seconds=0)` delivers what is pending and ends at once, so a test can step a
watch without threads. Production code never passes 0.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from syncer.core import model
from syncer.kube import api, errors, fakepods

MAX_SECRET_BYTES = 1024 * 1024
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Request:
    verb: str  # GET, LIST, WATCH, POST, PATCH, PUT, DELETE
    kind: str  # namespaces, serviceaccounts, secrets, leases, events, pods, pods/eviction
    namespace: str = ""
    name: str = ""


def _key(record: Any) -> Key:
    return (getattr(record, "namespace", ""), record.name)


class FakeCluster(fakepods.Pods):
    """`api.ClusterAPI` in memory. Thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._uids = itertools.count(1)
        self._objects: dict[str, dict[Key, Any]] = {
            "namespaces": {}, "serviceaccounts": {}, "secrets": {}, "leases": {}, "pods": {},
            "events": {}}
        self._budgets: set[Key] = set()  # Pods a PodDisruptionBudget (maxUnavailable: 0) covers
        self._log: list[tuple[int, str, api.EventType, Any, Any]] = []  # ..., record, previous
        self._compacted = 0
        self._watch_generation = 0
        self._watch_error: errors.KubeError | None = None
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

    def _store(self, kind: str, record: Any, etype: api.EventType) -> Any:
        """Record a change (lock held): a new resourceVersion and a watch event."""
        rv = next(self._rv)
        self._last_rv = rv
        previous = self._objects[kind].get(_key(record))
        if etype != "DELETED":
            record = dataclasses.replace(record, resource_version=str(rv))
            self._objects[kind][_key(record)] = record
        else:
            self._objects[kind].pop(_key(record), None)
        self._log.append((rv, kind, etype, record, previous))
        self._cond.notify_all()
        return record

    def _writable_namespace(self, namespace: str) -> None:
        ns = self._objects["namespaces"].get(("", namespace))
        if ns is None:
            raise errors.NotFound(f"namespace {namespace}: 404 NotFound", status=404)
        if ns.terminating:
            raise errors.NamespaceTerminating(
                f"namespace {namespace}: 403 Forbidden: is being terminated", status=403)

    def _existing(self, kind: str, namespace: str, name: str) -> Any:
        obj = self._objects[kind].get((namespace, name))
        if obj is None:
            raise errors.NotFound(f"{kind} {namespace}/{name}: 404 NotFound", status=404,
                                  reason="NotFound")
        return obj

    @staticmethod
    def _precondition(obj: Any, resource_version: str, what: str) -> None:
        if resource_version and obj.resource_version != resource_version:
            raise errors.Conflict(f"{what}: 409 Conflict", status=409, reason="Conflict")

    # ---- ClusterAPI: list and watch ----------------------------------------------------------
    def list(self, kind: api.Kind[api.R], *,
             selector: api.Selector = api.EVERYTHING) -> api.Listing[api.R]:
        with self._cond:
            self._serve("LIST", kind.name)
            items = sorted((r for r in self._objects[kind.name].values()
                            if fakepods.selects(selector, r)), key=_key)
            return api.Listing(tuple(cast(list[api.R], items)), str(self._last_rv))

    def watch(self, kind: api.Kind[api.R], *, resource_version: str, timeout_seconds: int,
              selector: api.Selector = api.EVERYTHING) -> Iterator[api.WatchEvent[api.R]]:
        with self._cond:
            self._serve("WATCH", kind.name)
            since = int(resource_version or 0)
            if since < self._compacted:
                raise errors.Gone(f"WATCH {kind.name}: 410 Expired", status=410, reason="Expired")
            generation = self._watch_generation
        deadline = time.monotonic() + timeout_seconds
        while True:
            with self._cond:
                while True:
                    batch = [(rv, *seen) for rv, k, etype, rec, old in self._log
                             if rv > since and k == kind.name
                             and (seen := fakepods.as_seen(selector, etype, rec, old)) is not None]
                    left = deadline - time.monotonic()
                    if batch or generation != self._watch_generation or left <= 0:
                        break
                    self._cond.wait(min(left, 0.1))
                if generation != self._watch_generation:
                    if self._watch_error is not None:
                        raise self._watch_error
                    return
            for rv, etype, rec in batch:
                since = rv
                yield api.WatchEvent(etype, None if etype == "BOOKMARK" else rec, str(rv))
            if not batch and time.monotonic() >= deadline:
                return

    # ---- ClusterAPI: reads -------------------------------------------------------------------
    def get_secret(self, namespace: str, name: str) -> model.Secret:
        with self._cond:
            self._serve("GET", "secrets", namespace, name)
            return cast(model.Secret, self._existing("secrets", namespace, name))

    def get_service_account(self, namespace: str, name: str) -> model.ServiceAccount:
        with self._cond:
            self._serve("GET", "serviceaccounts", namespace, name)
            return cast(model.ServiceAccount, self._existing("serviceaccounts", namespace, name))

    # ---- ClusterAPI: writes ------------------------------------------------------------------
    def create_secret(self, content: model.SecretContent) -> model.Secret:
        ns, name = content.namespace, content.name
        with self._cond:
            self._serve("POST", "secrets", ns, name)
            self._writable_namespace(ns)
            if (ns, name) in self._objects["secrets"]:
                raise errors.AlreadyExists(f"POST secrets {ns}/{name}: 409 AlreadyExists",
                                           status=409, reason="AlreadyExists")
            self._check_size(content)
            record = model.Secret(
                namespace=ns, name=name, managed=True, type=model.SECRET_TYPE,
                digest=model.digest(content.data), data_keys=(model.DOCKERCONFIG_KEY,),
                labels={model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE},
                annotations=content.annotations(), resource_version="",
                uid=f"uid-{next(self._uids)}")
            return cast(model.Secret, self._store("secrets", record, "ADDED"))

    def update_secret(self, content: model.SecretContent, *, resource_version: str,
                      drop_keys: tuple[str, ...]) -> model.Secret:
        ns, name = content.namespace, content.name
        with self._cond:
            self._serve("PATCH", "secrets", ns, name)
            self._writable_namespace(ns)
            old: model.Secret = self._existing("secrets", ns, name)
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
            return cast(model.Secret, self._store("secrets", record, "MODIFIED"))

    def delete_secret(self, namespace: str, name: str, *, resource_version: str) -> None:
        with self._cond:
            self._serve("DELETE", "secrets", namespace, name)
            old = self._objects["secrets"].get((namespace, name))
            if old is None:
                return
            self._precondition(old, resource_version, f"DELETE secrets {namespace}/{name}")
            self._store("secrets", old, "DELETED")

    def release_secret(self, namespace: str, name: str, *, resource_version: str,
                       ) -> model.Secret:
        with self._cond:
            self._serve("PATCH", "secrets", namespace, name)
            self._writable_namespace(namespace)
            old: model.Secret = self._existing("secrets", namespace, name)
            self._precondition(old, resource_version, f"PATCH secrets {namespace}/{name}")
            record = dataclasses.replace(
                old, managed=False,
                labels={k: v for k, v in old.labels.items() if k != model.MANAGED_BY_LABEL},
                annotations={k: v for k, v in old.annotations.items()
                             if k not in model.OUR_ANNOTATIONS})
            return cast(model.Secret, self._store("secrets", record, "MODIFIED"))

    def patch_service_account(self, change: model.ServiceAccountChange,
                              ) -> model.ServiceAccount:
        ns, name = change.namespace, change.name
        with self._cond:
            self._serve("PATCH", "serviceaccounts", ns, name)
            self._writable_namespace(ns)
            old: model.ServiceAccount = self._existing("serviceaccounts", ns, name)
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
            return cast(model.ServiceAccount, self._store("serviceaccounts", record, "MODIFIED"))

    # ---- ClusterAPI: leases and events ---------------------------------------------------------
    def get_lease(self, namespace: str, name: str) -> model.Lease:
        with self._cond:
            self._serve("GET", "leases", namespace, name)
            return cast(model.Lease, self._existing("leases", namespace, name))

    def create_lease(self, lease: model.Lease) -> model.Lease:
        with self._cond:
            self._serve("POST", "leases", lease.namespace, lease.name)
            self._writable_namespace(lease.namespace)
            if (lease.namespace, lease.name) in self._objects["leases"]:
                raise errors.AlreadyExists("POST leases: 409 AlreadyExists", status=409,
                                           reason="AlreadyExists")
            return cast(model.Lease, self._store("leases", lease, "ADDED"))

    def update_lease(self, lease: model.Lease) -> model.Lease:
        with self._cond:
            self._serve("PUT", "leases", lease.namespace, lease.name)
            old = self._existing("leases", lease.namespace, lease.name)
            if old.resource_version != lease.resource_version:
                raise errors.Conflict("PUT leases: 409 Conflict", status=409, reason="Conflict")
            return cast(model.Lease, self._store("leases", lease, "MODIFIED"))

    def record_event(self, ref: model.ObjectRef, *, reason: str, message: str) -> None:
        with self._cond:
            try:
                self._serve("POST", "events", ref.namespace, ref.name)
            except errors.KubeError:
                return  # best effort, like the real client
            self.events.append((ref, reason, message))
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            record = model.Event(
                namespace=ref.namespace or "default", name=f"{ref.name}.{len(self.events)}",
                reason=reason, message=message, object_kind=ref.kind, object_name=ref.name,
                component="pullsecret-syncer", last_seen=now)
            self._objects["events"][_key(record)] = record

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
        with self._cond:
            record = model.Namespace(name=name, labels=dict(labels or {}),
                                     uid=f"uid-{next(self._uids)}")
            self._objects["namespaces"][("", name)] = record
            rv = next(self._rv)
            self._last_rv = rv
            self._log.append((rv, "namespaces", "ADDED", record, None))
            self._cond.notify_all()
            return record

    def relabel_namespace(self, name: str, labels: dict[str, str]) -> None:
        with self._cond:
            old = self._objects["namespaces"][("", name)]
            self._put_namespace(dataclasses.replace(old, labels=dict(labels)), "MODIFIED")

    def terminate_namespace(self, name: str) -> None:
        """The namespace starts terminating (its objects stay until `delete_namespace`)."""
        with self._cond:
            old = self._objects["namespaces"][("", name)]
            self._put_namespace(dataclasses.replace(old, terminating=True), "MODIFIED")

    def delete_namespace(self, name: str) -> None:
        """The namespace and everything in it are gone (what the namespace controller does)."""
        with self._cond:
            for kind in ("secrets", "serviceaccounts", "leases", "pods"):
                for key, record in list(self._objects[kind].items()):
                    if key[0] == name:
                        self._store(kind, record, "DELETED")
            old = self._objects["namespaces"].get(("", name))
            if old is not None:
                self._put_namespace(old, "DELETED")

    def _put_namespace(self, record: model.Namespace, etype: api.EventType) -> None:
        rv = next(self._rv)
        self._last_rv = rv
        previous = self._objects["namespaces"].get(("", record.name))
        if etype == "DELETED":
            self._objects["namespaces"].pop(("", record.name), None)
        else:
            self._objects["namespaces"][("", record.name)] = record
        self._log.append((rv, "namespaces", etype, record, previous))
        self._cond.notify_all()

    def put_service_account(self, namespace: str, name: str, *,
                            image_pull_secrets: tuple[str, ...] = (),
                            ours: tuple[str, ...] = (),
                            manager: str = "kubectl") -> model.ServiceAccount:
        """Create or overwrite a ServiceAccount as another writer (field manager) would."""
        with self._cond:
            old = self._objects["serviceaccounts"].get((namespace, name))
            record = model.ServiceAccount(
                namespace=namespace, name=name, image_pull_secrets=image_pull_secrets,
                ours=ours, resource_version="", has_annotations=bool(ours),
                pull_secrets_writer=manager,
                uid=old.uid if old is not None else f"uid-{next(self._uids)}")
            return cast(model.ServiceAccount, self._store(
                "serviceaccounts", record, "ADDED" if old is None else "MODIFIED"))

    def put_secret(self, record: model.Secret) -> model.Secret:
        """Create or overwrite a Secret as another writer would (ours or not: its labels say)."""
        with self._cond:
            old = self._objects["secrets"].get(_key(record))
            if not record.uid:
                record = dataclasses.replace(
                    record, uid=old.uid if old is not None else f"uid-{next(self._uids)}")
            return cast(model.Secret, self._store(
                "secrets", record, "ADDED" if old is None else "MODIFIED"))

    def remove(self, kind: str, namespace: str, name: str) -> None:
        """Delete an object as another writer would."""
        with self._cond:
            old = self._objects[kind].get((namespace, name))
            if old is not None:
                self._store(kind, old, "DELETED")

    def stored(self, kind: str, namespace: str, name: str) -> Any:
        """The current record (None if absent), uncounted."""
        with self._cond:
            return self._objects[kind].get((namespace, name))

    def bookmark(self, kind: str) -> None:
        """A BOOKMARK on open watches of `kind` (moves their resourceVersion, no record)."""
        with self._cond:
            rv = next(self._rv)
            self._last_rv = rv
            self._log.append((rv, kind, "BOOKMARK", None, None))
            self._cond.notify_all()

    def compact(self) -> None:
        """Like etcd compaction: watches from any version seen so far get 410 Gone."""
        with self._cond:
            self._compacted = self._last_rv + 1
            self._log.clear()

    def end_watches(self, *, error: errors.KubeError | None = None) -> None:
        """End every open watch (the server's timeout), or cut it with `error`."""
        with self._cond:
            self._watch_generation += 1
            self._watch_error = error
            self._cond.notify_all()

