"""The real `ClusterAPI`: typed records over the apiserver's REST API.

Paths and bodies live here and in `syncer.kube.codec`; transport concerns in `transport`.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from syncer.core import model, settings
from syncer.kube import api, codec, errors
from syncer.kube.client import transport

log = logging.getLogger(__name__)

PAGE_SIZE = 500
_PATHS = {"namespaces": "/api/v1/namespaces", "serviceaccounts": "/api/v1/serviceaccounts",
          "secrets": "/api/v1/secrets", "pods": "/api/v1/pods", "events": "/api/v1/events"}
_DECODERS: Mapping[str, Callable[[Mapping[str, Any]], Any]] = {
    "namespaces": codec.namespace, "serviceaccounts": codec.service_account,
    "secrets": codec.secret, "pods": codec.pod, "events": codec.event,
}
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


def connect(kube: settings.KubeSettings, *, stop: threading.Event | None = None) -> Cluster:
    """A cluster client from the kubeconfig / in-cluster configuration (no request made yet)."""
    return Cluster(transport.Transport(transport.load_configuration(kube), qps=kube.qps,
                                       burst=kube.burst, stop=stop or threading.Event()))


class Cluster:
    """`api.ClusterAPI` over HTTP. Thread-safe."""

    def __init__(self, http: transport.Transport) -> None:
        self._http = http

    def close(self) -> None:
        self._http.close()

    # ---- list and watch -------------------------------------------------------------------
    def list(self, kind: api.Kind[api.R], *,
             selector: api.Selector = api.EVERYTHING) -> api.Listing[api.R]:
        decode = _DECODERS[kind.name]
        items: list[api.R] = []
        cont: str | None = None
        while True:
            # Each item is decoded as it arrives: a page of big Secrets is never held whole.
            doc, page = self._http.call_list(_PATHS[kind.name], f"LIST {kind.name}", query={
                "labelSelector": selector.labels, "fieldSelector": selector.fields,
                "limit": PAGE_SIZE, "continue": cont}, decode=decode)
            items.extend(cast(list[api.R], page))
            meta = doc.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return api.Listing(tuple(items), str(meta.get("resourceVersion", "")))

    def watch(self, kind: api.Kind[api.R], *, resource_version: str, timeout_seconds: int,
              selector: api.Selector = api.EVERYTHING) -> Iterator[api.WatchEvent[api.R]]:
        what = f"WATCH {kind.name}"
        decode = _DECODERS[kind.name]
        query = {"watch": "true", "resourceVersion": resource_version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": timeout_seconds,
                 "labelSelector": selector.labels, "fieldSelector": selector.fields}
        for event in self._http.stream(_PATHS[kind.name], what, query=query,
                                       timeout_seconds=timeout_seconds):
            etype = str(event.get("type", ""))
            obj = event.get("object") or {}
            if etype == "ERROR":
                code = obj.get("code")
                if code == 410:
                    raise errors.Gone(f"{what}: 410 Expired", status=410, reason="Expired")
                raise errors.Retryable(f"{what}: watch error {code} {obj.get('reason', '')}",
                                       status=code if isinstance(code, int) else None)
            rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
            if etype == "BOOKMARK":
                yield api.WatchEvent("BOOKMARK", None, rv)
            elif etype in ("ADDED", "MODIFIED", "DELETED"):
                yield api.WatchEvent(cast(api.EventType, etype), cast(api.R, decode(obj)), rv)

    # ---- reads ----------------------------------------------------------------------------
    def get_secret(self, namespace: str, name: str) -> model.Secret:
        return codec.secret(self._http.call(
            "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}",
            f"GET secrets {namespace}/{name}"))

    def get_service_account(self, namespace: str, name: str) -> model.ServiceAccount:
        return codec.service_account(self._http.call(
            "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
            f"GET serviceaccounts {namespace}/{name}"))

    # ---- writes (rate-limited; messages never quote Secret data) ---------------------------
    def create_secret(self, content: model.SecretContent) -> model.Secret:
        ns, name = content.namespace, content.name
        return codec.secret(self._http.call(
            "POST", f"/api/v1/namespaces/{ns}/secrets", f"POST secrets {ns}/{name}",
            body=codec.new_secret(content), limited=True, quote_message=False))

    def update_secret(self, content: model.SecretContent, *, resource_version: str,
                      drop_keys: tuple[str, ...]) -> model.Secret:
        ns, name = content.namespace, content.name
        return codec.secret(self._http.call(
            "PATCH", f"/api/v1/namespaces/{ns}/secrets/{name}", f"PATCH secrets {ns}/{name}",
            body=codec.secret_merge_patch(content, resource_version=resource_version,
                                          drop_keys=drop_keys),
            content_type="application/merge-patch+json", limited=True, quote_message=False))

    def delete_secret(self, namespace: str, name: str, *, resource_version: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1",
                "preconditions": {"resourceVersion": resource_version}}
        try:
            self._http.call("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{name}",
                            f"DELETE secrets {namespace}/{name}", body=body, limited=True)
        except errors.NotFound:
            return

    def release_secret(self, namespace: str, name: str, *, resource_version: str,
                       ) -> model.Secret:
        return codec.secret(self._http.call(
            "PATCH", f"/api/v1/namespaces/{namespace}/secrets/{name}",
            f"PATCH secrets {namespace}/{name}",
            body=codec.secret_release_patch(resource_version=resource_version),
            content_type="application/merge-patch+json", limited=True, quote_message=False))

    def patch_service_account(self, change: model.ServiceAccountChange,
                              ) -> model.ServiceAccount:
        ns, name = change.namespace, change.name
        return codec.service_account(self._http.call(
            "PATCH", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}",
            f"PATCH serviceaccounts {ns}/{name}", body=codec.service_account_patch(change),
            content_type="application/json-patch+json", limited=True))

    def evict_pod(self, namespace: str, name: str, *, uid: str = "") -> None:
        # Not retried here: a refusal or a 5xx is retried by the recycler's own schedule.
        self._http.call(
            "POST", f"/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            f"POST pods/eviction {namespace}/{name}",
            body=codec.eviction(namespace, name, uid=uid), limited=True, retry=False)

    # ---- leases (not rate-limited: renewals must be on time whatever else is queued) ------
    def get_lease(self, namespace: str, name: str) -> model.Lease:
        return codec.lease(self._http.call(
            "GET", f"{_LEASES.format(ns=namespace)}/{name}", f"GET leases {namespace}/{name}",
            retry=False))

    def create_lease(self, lease: model.Lease) -> model.Lease:
        return codec.lease(self._http.call(
            "POST", _LEASES.format(ns=lease.namespace), f"POST leases {lease.namespace}/"
            f"{lease.name}", body=codec.lease_body(lease), retry=False))

    def update_lease(self, lease: model.Lease) -> model.Lease:
        return codec.lease(self._http.call(
            "PUT", f"{_LEASES.format(ns=lease.namespace)}/{lease.name}",
            f"PUT leases {lease.namespace}/{lease.name}", body=codec.lease_body(lease),
            retry=False))

    # ---- events ---------------------------------------------------------------------------
    def record_event(self, ref: model.ObjectRef, *, reason: str, message: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ns = codec.event_namespace(ref)
        try:
            self._http.call("POST", f"/api/v1/namespaces/{ns}/events", f"POST events {ns}",
                            body=codec.warning_event(ref, reason=reason, message=message,
                                                     now=now),
                            limited=True, retry=False)
        except errors.KubeError as exc:
            log.warning("event not recorded", extra={"namespace": ns, "error": str(exc)})
