"""FakeCluster's Pods and selectors: eviction with the apiserver's PodDisruptionBudget rule, the
test-side helpers that play the ReplicaSet controller and the kubelet, and how label and field
selectors (and a watch through one) see records.

The eviction rule is the one of kube-apiserver 1.37 (`pkg/registry/core/pod/storage/
eviction.go`): a Pod that is not running — Pending, finished, or already terminating — is evicted
whatever its budget says (it provides no service to protect); a running Pod that a budget with
no disruptions left covers is refused with 429.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from syncer.core import model
from syncer.kube import api, errors

Key = tuple[str, str]
BUDGET_IGNORED = frozenset({"Pending", "Succeeded", "Failed"})
REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


def selects(selector: api.Selector, record: Any) -> bool:
    """Equality-based label and field selectors, as far as the syncer uses them."""
    for text, lookup in ((selector.labels, lambda k: getattr(record, "labels", {}).get(k)),
                         (selector.fields, lambda k: _field(record, k))):
        for term in filter(None, (text or "").split(",")):
            key, _, value = term.partition("=")
            if lookup(key.strip()) != value.strip():
                return False
    return True


def _field(record: Any, path: str) -> str | None:
    return {"metadata.name": getattr(record, "name", None),
            "metadata.namespace": getattr(record, "namespace", None),
            "status.phase": getattr(record, "phase", None),
            "reason": getattr(record, "reason", None)}.get(path)


def as_seen(selector: api.Selector, etype: api.EventType, record: Any,
            old: Any) -> tuple[api.EventType, Any] | None:
    """How a watch with `selector` sees a change, as the apiserver's watch cache sends it:
    entering the selection is ADDED; leaving it is DELETED with the previous content (at the
    change's resourceVersion); None when the watch does not see it at all."""
    if etype == "BOOKMARK":
        return etype, record
    now, before = selects(selector, record), old is not None and selects(selector, old)
    if etype == "MODIFIED" and now != before:
        if now:
            return "ADDED", record
        return "DELETED", dataclasses.replace(old, resource_version=record.resource_version)
    return (etype, record) if now else None


class Pods:
    """Mixed into FakeCluster, whose lock, stores and bookkeeping it uses."""

    if TYPE_CHECKING:
        _cond: threading.Condition
        _objects: dict[str, dict[Key, Any]]
        _uids: Iterator[int]
        _budgets: set[Key]

        def _serve(self, verb: str, kind: str, namespace: str = "", name: str = "") -> None: ...

        def _store(self, kind: str, record: Any, etype: api.EventType) -> Any: ...

    # ---- ClusterAPI ----------------------------------------------------------------------------
    def evict_pod(self, namespace: str, name: str, *, uid: str = "") -> None:
        what = f"POST pods/eviction {namespace}/{name}"
        with self._cond:
            self._serve("POST", "pods/eviction", namespace, name)
            pod: model.Pod | None = self._objects["pods"].get((namespace, name))
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
            self._store("pods", pod, "DELETED")

    # ---- test side: the ReplicaSet controller, the kubelet, a PodDisruptionBudget -------------
    def add_pod(self, namespace: str, name: str, *, service_account: str = "default",
                image_pull_secrets: tuple[str, ...] | None = None, controller: bool = True,
                phase: str = "Pending", controller_kind: str = "ReplicaSet",
                waiting: tuple[tuple[str, str], ...] = ()) -> model.Pod:
        """Create a Pod as a controller would. Like the ServiceAccount admission plugin, a Pod
        without imagePullSecrets of its own (None) gets its ServiceAccount's, as they are now."""
        with self._cond:
            if image_pull_secrets is None:
                sa = self._objects["serviceaccounts"].get((namespace, service_account))
                image_pull_secrets = sa.image_pull_secrets if sa is not None else ()
            record = model.Pod(
                namespace=namespace, name=name, uid=f"uid-{next(self._uids)}",
                resource_version="", service_account=service_account,
                image_pull_secrets=image_pull_secrets, has_controller=controller, phase=phase,
                waiting=waiting, controller_kind=controller_kind if controller else "")
            return cast(model.Pod, self._store("pods", record, "ADDED"))

    def set_pod_status(self, namespace: str, name: str, *, phase: str | None = None,
                       waiting: tuple[tuple[str, str], ...] | None = None) -> model.Pod:
        """Write a Pod's status as the kubelet would: its phase, its waiting containers
        (image, reason) — e.g. `(("ghcr.io/org/app:1", "ImagePullBackOff"),)`."""
        with self._cond:
            old: model.Pod = self._objects["pods"][(namespace, name)]
            record = dataclasses.replace(
                old, phase=old.phase if phase is None else phase,
                waiting=old.waiting if waiting is None else waiting)
            return cast(model.Pod, self._store("pods", record, "MODIFIED"))

    def protect_pod(self, namespace: str, name: str) -> None:
        """A PodDisruptionBudget with `maxUnavailable: 0` covers this Pod from now on."""
        with self._cond:
            self._budgets.add((namespace, name))
