"""Kubernetes access: the only module that imports `kubernetes`.

Reads come back as small typed records parsed from raw JSON (the client's model classes are slow
and heavy for big lists); writes carry preconditions; API errors become our own error tree, with
messages that never include object data.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tenacity
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from syncer import model

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read (seconds) for everything but watches
PAGE_SIZE = 500


class KubeError(Exception):
    """A Kubernetes API call failed. `status` is the HTTP status when there was one."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    pass


class NamespaceTerminating(NotFound):
    """403 from NamespaceLifecycle: the namespace is going away; as good as gone."""


class Conflict(KubeError):
    """409, or 422 from a failed JSON-patch `test` precondition: re-read and retry."""


class AlreadyExists(Conflict):
    pass


class Invalid(KubeError):
    """422: the apiserver rejected the object (e.g. too big, not valid JSON)."""


class Forbidden(KubeError):
    pass


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; re-list."""


class Retryable(KubeError):
    """429, 5xx, timeouts and connection errors."""

    retryable = True


def _status_details(exc: ApiException) -> tuple[str, str, list[str]]:
    """(reason, message, cause fields) of an API Status body, without object data."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return "", "", []
    if not isinstance(body, dict):
        return "", "", []
    details = body.get("details")
    causes = details.get("causes", []) if isinstance(details, dict) else []
    fields = [str(c.get("field", "")) for c in causes if isinstance(c, dict) and c.get("field")]
    return str(body.get("reason", "")), str(body.get("message", "")), fields


def translate(exc: Exception, what: str, *, quote_message: bool = True) -> KubeError:
    """Map a client exception to our error tree. `what` names the call (`PATCH secrets ns/x`).

    With quote_message=False (writes that carry credential data) the apiserver's message is left
    out and only its reason and the names of the offending fields are kept.
    """
    if isinstance(exc, ApiException):
        status = exc.status or 0
        reason, message, fields = _status_details(exc)
        detail = message if quote_message else (
            f"invalid fields: {', '.join(fields)}" if fields else reason
        )
        text = f"{what}: {status} {reason}".rstrip() + (f": {detail}" if detail else "")
        if status == 404:
            return NotFound(text, status=status, reason=reason)
        if status == 409:
            cls = AlreadyExists if reason == "AlreadyExists" else Conflict
            return cls(text, status=status, reason=reason)
        if status == 422:
            # A failed JSON-patch `test` op: 1.20 says only "the server rejected our request
            # due to an error in our request" with no causes; newer versions name the test.
            if ("test operation" in message or "testing value" in message
                    or (not fields and "rejected our request" in message)):
                return Conflict(text, status=status, reason=reason)
            return Invalid(text, status=status, reason=reason)
        if status == 410:
            return Gone(text, status=status, reason=reason)
        if status == 403 and "being terminated" in message:
            return NamespaceTerminating(text, status=status, reason=reason)
        if status in (401, 403):
            return Forbidden(text, status=status, reason=reason)
        if status == 429 or status >= 500 or status == 0:
            return Retryable(text, status=status, reason=reason)
        return KubeError(text, status=status, reason=reason)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return Retryable(f"{what}: connection failed ({type(exc).__name__})")
    return KubeError(f"{what}: {type(exc).__name__}")


class TokenBucket:
    """Client-side write rate limit (`--kube-qps`, `--kube-burst`)."""

    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 stop: threading.Event | None = None) -> None:
        self._rate = max(qps, 0.001)
        self._capacity = float(max(burst, 1))
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._stop = stop or threading.Event()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self._rate
            if self._stop.wait(wait):
                return  # shutting down: let the in-flight write finish promptly


def load_configuration(*, kubeconfig: str | None, context: str | None) -> k8s.Configuration:
    """In-cluster config when KUBERNETES_SERVICE_HOST is set (and no kubeconfig given),
    else the kubeconfig file ($KUBECONFIG / ~/.kube/config)."""
    cfg = k8s.Configuration()
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=cfg,
            persist_config=False,
        )
    cfg.retries = False  # we retry ourselves, visibly and with backoff
    cfg.connection_pool_maxsize = 16
    return cfg


def _retrying() -> tenacity.Retrying:
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, KubeError) and e.retryable),
        wait=tenacity.wait_exponential_jitter(initial=0.2, max=5.0),
        stop=tenacity.stop_after_attempt(6),
        reraise=True,
    )


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: str


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def parse_namespace(obj: Mapping[str, Any]) -> model.Namespace:
    meta = _meta(obj)
    phase = (obj.get("status") or {}).get("phase")
    return model.Namespace(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        terminating=phase == "Terminating" or bool(meta.get("deletionTimestamp")),
        uid=str(meta.get("uid", "")),
    )


def parse_secret(obj: Mapping[str, Any]) -> model.Secret:
    meta = _meta(obj)
    labels = dict(meta.get("labels") or {})
    data = obj.get("data") or {}
    raw = data.get(model.DOCKERCONFIG_KEY)
    decoded: bytes | None = None
    if isinstance(raw, str):
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            decoded = None
    return model.Secret(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        managed=labels.get(model.MANAGED_BY_LABEL) == model.MANAGED_BY_VALUE,
        type=str(obj.get("type", "")),
        data=decoded,
        data_keys=tuple(sorted(data)),
        labels=labels,
        annotations={k: v for k, v in (meta.get("annotations") or {}).items()
                     if k.startswith("pullsecret-syncer.io/")},
        resource_version=str(meta.get("resourceVersion", "")),
        uid=str(meta.get("uid", "")),
    )


def parse_service_account(obj: Mapping[str, Any]) -> model.ServiceAccount:
    meta = _meta(obj)
    annotations = meta.get("annotations") or {}
    refs = obj.get("imagePullSecrets") or []
    return model.ServiceAccount(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        image_pull_secrets=tuple(str(r.get("name", "")) for r in refs if isinstance(r, dict)),
        ours=model.split_names(annotations.get(model.SA_ANNOTATION)),
        resource_version=str(meta.get("resourceVersion", "")),
        uid=str(meta.get("uid", "")),
        has_annotations=bool(meta.get("annotations")),
    )


class Kube:
    """A connection to one cluster. Thread-safe; writes share one rate limiter.

    Requests go through the client's transport (auth, TLS, proxies from the kubeconfig) but
    bodies are sent and read as plain JSON: no model classes, no validation overhead.
    """

    def __init__(self, configuration: k8s.Configuration, *, qps: float = 20.0, burst: int = 40,
                 stop: threading.Event | None = None,
                 on_write: Callable[[str, str], None] | None = None) -> None:
        self.api_client = k8s.ApiClient(configuration)
        self._bucket = TokenBucket(qps, burst, stop=stop)
        self._on_write = on_write or (lambda kind, action: None)

    def close(self) -> None:
        self.api_client.rest_client.pool_manager.clear()

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json",
                timeout: tuple[float, float] = REQUEST_TIMEOUT) -> Any:
        """One HTTP request; returns the raw urllib3 response (2xx) or raises ApiException."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        serialized = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers,
            body=body, auth_settings=["BearerToken"])
        resp = self.api_client.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()  # type: ignore[no-untyped-call]
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
        return resp.response

    def _json(self, method: str, path: str, what: str, *, write: tuple[str, str] | None = None,
              quote_message: bool = True, retry: bool = True, **kwargs: Any) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            if write is not None:
                self._bucket.acquire()
            try:
                resp = self.request(method, path, **kwargs)
                doc = json.loads(resp.data or b"{}")
            except Exception as exc:
                raise translate(exc, what, quote_message=quote_message) from exc
            if write is not None:
                self._on_write(*write)
            return doc if isinstance(doc, dict) else {}
        if not retry:
            return attempt()
        result: dict[str, Any] = _retrying()(attempt)
        return result

    def get_json(self, path: str, what: str) -> dict[str, Any]:
        """GET any object as raw JSON, once (callers with deadlines retry on their own)."""
        return self._json("GET", path, what, retry=False)

    def write_json(self, method: str, path: str, what: str, *, body: Any) -> dict[str, Any]:
        """POST/PUT any object as raw JSON, once, outside the Secret/SA write limiter (the
        Lease must be renewed on time whatever else is queued)."""
        return self._json(method, path, what, body=body, retry=False)

    # ---- reads -------------------------------------------------------------------------
    def _list(self, path: str, what: str, **query: Any) -> ListResult:
        items: list[dict[str, Any]] = []
        cont: str | None = None
        while True:
            doc = self._json("GET", path, what,
                             query={**query, "limit": PAGE_SIZE, "continue": cont})
            items.extend(doc.get("items") or [])
            meta = doc.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return ListResult(items, str(meta.get("resourceVersion", "")))

    def list_namespaces(self) -> ListResult:
        return self._list("/api/v1/namespaces", "LIST namespaces")

    def list_service_accounts(self) -> ListResult:
        return self._list("/api/v1/serviceaccounts", "LIST serviceaccounts")

    def list_secrets(self, *, label_selector: str | None = None,
                     field_selector: str | None = None) -> ListResult:
        return self._list("/api/v1/secrets", "LIST secrets", labelSelector=label_selector,
                          fieldSelector=field_selector)

    def get_service_account(self, namespace: str, name: str) -> model.ServiceAccount:
        return parse_service_account(self._json(
            "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
            f"GET serviceaccounts {namespace}/{name}"))

    def get_secret(self, namespace: str, name: str) -> model.Secret:
        return parse_secret(self._json(
            "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}",
            f"GET secrets {namespace}/{name}"))

    def watch(self, resource: str, *, resource_version: str, timeout_seconds: int = 300,
              label_selector: str | None = None, field_selector: str | None = None,
              ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (event type, raw object) from one watch request of `resource` (namespaces,
        serviceaccounts, secrets) across all namespaces; raise Gone on 410."""
        what = f"WATCH {resource}"
        query = {"watch": "true", "resourceVersion": resource_version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": timeout_seconds,
                 "labelSelector": label_selector, "fieldSelector": field_selector}
        try:
            resp = self.request("GET", f"/api/v1/{resource}", query=query,
                                timeout=(REQUEST_TIMEOUT[0], timeout_seconds + 30.0))
        except Exception as exc:
            raise translate(exc, what) from exc
        try:
            for line in _lines(resp):
                event = json.loads(line)
                etype = str(event.get("type", ""))
                obj = event.get("object") or {}
                if etype == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise Gone(f"{what}: 410 Expired", status=410, reason="Expired")
                    raise Retryable(f"{what}: watch error {code} {obj.get('reason', '')}",
                                    status=code if isinstance(code, int) else None)
                yield etype, obj
        except KubeError:
            raise
        except Exception as exc:
            raise translate(exc, what) from exc
        finally:
            resp.release_conn()

    # ---- writes ------------------------------------------------------------------------
    def create_secret(self, namespace: str, name: str, *, data: bytes, mapping: str,
                      credentials: tuple[str, ...]) -> model.Secret:
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": model.SECRET_TYPE,
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE},
                         "annotations": _secret_annotations(mapping, credentials)},
            "data": {model.DOCKERCONFIG_KEY: base64.b64encode(data).decode()},
        }
        return parse_secret(self._json(
            "POST", f"/api/v1/namespaces/{namespace}/secrets", f"POST secrets {namespace}/{name}",
            body=body, write=("secret", "create"), quote_message=False))

    def update_secret(self, namespace: str, name: str, *, data: bytes, mapping: str,
                      credentials: tuple[str, ...], resource_version: str,
                      drop_keys: tuple[str, ...] = ()) -> model.Secret:
        """Merge-patch our label, annotations and data, guarded by resourceVersion (409 if
        someone wrote in between). Foreign labels and annotations stay; other data keys go."""
        patch = {
            "type": model.SECRET_TYPE,
            "metadata": {"resourceVersion": resource_version,
                         "labels": {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE},
                         "annotations": _secret_annotations(mapping, credentials)},
            "data": {**{k: None for k in drop_keys},
                     model.DOCKERCONFIG_KEY: base64.b64encode(data).decode()},
        }
        return parse_secret(self._json(
            "PATCH", f"/api/v1/namespaces/{namespace}/secrets/{name}",
            f"PATCH secrets {namespace}/{name}", body=patch,
            content_type="application/merge-patch+json", write=("secret", "update"),
            quote_message=False))

    def delete_secret(self, namespace: str, name: str, *, resource_version: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1",
                "preconditions": {"resourceVersion": resource_version}}
        try:
            self._json("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{name}",
                       f"DELETE secrets {namespace}/{name}", body=body,
                       write=("secret", "delete"))
        except NotFound:
            return

    def patch_service_account(self, namespace: str, name: str,
                              ops: list[dict[str, Any]]) -> model.ServiceAccount:
        """Apply a JSON patch whose first op tests resourceVersion (Conflict when stale)."""
        return parse_service_account(self._json(
            "PATCH", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
            f"PATCH serviceaccounts {namespace}/{name}", body=ops,
            content_type="application/json-patch+json", write=("serviceaccount", "patch")))

    def create_event(self, *, kind: str, namespace: str, name: str, uid: str, reason: str,
                     message: str) -> None:
        """A Warning Event on the object concerned (best effort: failures are only logged)."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event_ns = "default" if kind == "Namespace" else namespace  # cluster-scoped: as client-go
        involved: dict[str, str] = {"apiVersion": "v1", "kind": kind, "name": name}
        if kind != "Namespace":
            involved["namespace"] = namespace
        if uid:
            involved["uid"] = uid
        body = {
            "apiVersion": "v1", "kind": "Event", "type": "Warning",
            "metadata": {"generateName": f"{name}.", "namespace": event_ns},
            "involvedObject": involved, "reason": reason, "message": message[:1024],
            "count": 1, "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": "pullsecret-syncer"},
            "reportingComponent": "pullsecret-syncer",
        }
        try:
            self._bucket.acquire()
            self.request("POST", f"/api/v1/namespaces/{event_ns}/events", body=body)
        except Exception as exc:
            err = translate(exc, f"POST events {event_ns}")
            log.warning("event not recorded", extra={"namespace": event_ns, "error": str(err)})


def _secret_annotations(mapping: str, credentials: tuple[str, ...]) -> dict[str, str]:
    return {model.MAPPING_ANNOTATION: mapping,
            model.CREDENTIALS_ANNOTATION: ",".join(credentials)}


def _lines(resp: Any) -> Iterator[bytes]:
    """Split a chunked watch response into JSON lines as they arrive."""
    buf = b""
    for chunk in resp.stream(amt=None, decode_content=True):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf
