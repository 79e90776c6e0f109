"""API JSON to records and records to request bodies. Pure: no I/O, no `kubernetes` import.

Reads are parsed from raw JSON (the client's model classes are slow and heavy for big lists);
writes are built here so that what goes over the wire can be unit-tested without a server.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Mapping
from typing import Any

from syncer.core import model

JsonObject = dict[str, Any]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- decode


def namespace(obj: Mapping[str, Any]) -> model.Namespace:
    meta = _meta(obj)
    phase = (obj.get("status") or {}).get("phase")
    return model.Namespace(
        name=str(meta.get("name", "")),
        labels=_str_map(meta.get("labels")),
        terminating=phase == "Terminating" or bool(meta.get("deletionTimestamp")),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
    )


def secret(obj: Mapping[str, Any]) -> model.Secret:
    """Only what a pass needs: our label and annotations, and a digest of the data (a Secret
    that someone else labelled as ours may be 1 MiB; its record stays a few hundred bytes)."""
    meta = _meta(obj)
    labels = meta.get("labels")
    managed = isinstance(labels, dict) and labels.get(model.MANAGED_BY_LABEL) == \
        model.MANAGED_BY_VALUE
    annotations = meta.get("annotations")
    data = obj.get("data") or {}
    raw = data.get(model.DOCKERCONFIG_KEY) if isinstance(data, dict) else None
    digest: str | None = None
    if isinstance(raw, str):
        try:
            digest = model.digest(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            digest = None
    return model.Secret(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        managed=managed,
        type=str(obj.get("type", "")),
        digest=digest,
        data_keys=tuple(sorted(map(str, data))) if isinstance(data, dict) else (),
        labels={model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE} if managed else {},
        annotations={k: str(annotations[k]) for k in model.OUR_ANNOTATIONS
                     if k in annotations} if isinstance(annotations, dict) else {},
        resource_version=str(meta.get("resourceVersion", "")),
        uid=str(meta.get("uid", "")),
        immutable=obj.get("immutable") is True,
    )


def service_account(obj: Mapping[str, Any]) -> model.ServiceAccount:
    meta = _meta(obj)
    annotations = _str_map(meta.get("annotations"))
    refs = obj.get("imagePullSecrets") or []
    return model.ServiceAccount(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        image_pull_secrets=tuple(str(r.get("name", "")) for r in refs if isinstance(r, dict)),
        ours=model.split_names(annotations.get(model.SA_ANNOTATION)),
        resource_version=str(meta.get("resourceVersion", "")),
        uid=str(meta.get("uid", "")),
        has_annotations=bool(meta.get("annotations")),
        pull_secrets_writer=pull_secrets_writer(meta.get("managedFields")),
        tracked=bool(meta.get("managedFields")),
    )


def pull_secrets_writer(managed_fields: Any) -> str:
    """The field manager that last changed `imagePullSecrets`: the one that owns the list now
    (an update that changes an atomic list takes it over), or, when nobody does (the list was
    dropped whole, which leaves no trace of the writer), the other manager that wrote last.
    Interned: a thousand ServiceAccounts share a handful of names."""
    entries = _dicts(managed_fields)
    for entry in entries:
        fields = entry.get("fieldsV1")
        if isinstance(fields, dict) and "f:imagePullSecrets" in fields:
            return sys.intern(str(entry.get("manager", "")))
    others = [(str(e.get("time", "")), i, str(e.get("manager", "")))
              for i, e in enumerate(entries) if e.get("manager") != model.FIELD_MANAGER]
    return sys.intern(max(others)[2]) if others else ""


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def pod(obj: Mapping[str, Any]) -> model.Pod:
    """Only what the recycling decision needs; repeated strings (images, reasons, account
    names) are interned, so a thousand Pods of one Deployment share them."""
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    images = {str(c.get("name", "")): str(c.get("image", ""))
              for key in ("initContainers", "containers") for c in _dicts(spec.get(key))}
    waiting: list[tuple[str, str]] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for st in _dicts(status.get(key)):
            state = st.get("state") or {}
            wait = state.get("waiting") if isinstance(state, dict) else None
            if isinstance(wait, dict) and wait.get("reason"):
                image = images.get(str(st.get("name", ""))) or str(st.get("image", ""))
                waiting.append((sys.intern(image), sys.intern(str(wait["reason"]))))
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    controllers = [r for r in _dicts(meta.get("ownerReferences")) if r.get("controller") is True]
    return model.Pod(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        service_account=sys.intern(str(account)),
        image_pull_secrets=tuple(sys.intern(str(r.get("name", "")))
                                 for r in _dicts(spec.get("imagePullSecrets"))),
        has_controller=bool(controllers),
        phase=sys.intern(str(status.get("phase", ""))),
        waiting=tuple(waiting),
        terminating=bool(meta.get("deletionTimestamp")),
        controller_kind=sys.intern(str(controllers[0].get("kind", ""))) if controllers else "",
    )


def event(obj: Mapping[str, Any]) -> model.Event:
    meta = _meta(obj)
    involved = obj.get("involvedObject") or {}
    source = obj.get("source") or {}
    return model.Event(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        reason=str(obj.get("reason", "")),
        message=str(obj.get("message", "")),
        object_kind=str(involved.get("kind", "")),
        object_name=str(involved.get("name", "")),
        component=str(source.get("component") or obj.get("reportingComponent") or ""),
        last_seen=str(obj.get("lastTimestamp") or obj.get("eventTime")
                      or obj.get("firstTimestamp") or ""),
        resource_version=str(meta.get("resourceVersion", "")),
    )


def lease(obj: Mapping[str, Any]) -> model.Lease:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    return model.Lease(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        holder=spec.get("holderIdentity") or None,
        duration_seconds=int(duration) if isinstance(duration, int) else None,
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(meta.get("resourceVersion", "")),
    )


# --------------------------------------------------------------------------- encode


def new_secret(content: model.SecretContent) -> JsonObject:
    """The body of a POST creating a managed Secret."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": model.SECRET_TYPE,
        "metadata": {"name": content.name, "namespace": content.namespace,
                     "labels": {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE},
                     "annotations": content.annotations()},
        "data": {model.DOCKERCONFIG_KEY: base64.b64encode(content.data).decode()},
    }


def secret_merge_patch(content: model.SecretContent, *, resource_version: str,
                       drop_keys: tuple[str, ...]) -> JsonObject:
    """A merge patch guarded by resourceVersion (409 if someone wrote in between): our label,
    annotations and data; foreign labels and annotations stay; other data keys go."""
    return {
        "type": model.SECRET_TYPE,
        "metadata": {"resourceVersion": resource_version,
                     "labels": {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE},
                     "annotations": content.annotations()},
        "data": {**{k: None for k in drop_keys if k != model.DOCKERCONFIG_KEY},
                 model.DOCKERCONFIG_KEY: base64.b64encode(content.data).decode()},
    }


def secret_release_patch(*, resource_version: str) -> JsonObject:
    """A merge patch guarded by resourceVersion that hands a Secret back: our label and
    annotations go, its data and everything else stay."""
    return {"metadata": {"resourceVersion": resource_version,
                         "labels": {model.MANAGED_BY_LABEL: None},
                         "annotations": dict.fromkeys(model.OUR_ANNOTATIONS)}}


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def service_account_patch(change: model.ServiceAccountChange) -> list[JsonObject]:
    """The JSON patch for `change`; its first op tests resourceVersion (a failed test is the
    apiserver's 422, which we treat as a conflict)."""
    ops: list[JsonObject] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": change.resource_version}]
    if change.image_pull_secrets is not None:
        ops.append({"op": "add", "path": "/imagePullSecrets",
                    "value": [{"name": n} for n in change.image_pull_secrets]})
    if change.ours is not None:
        key = f"/metadata/annotations/{_pointer(model.SA_ANNOTATION)}"
        if not change.ours:
            ops.append({"op": "remove", "path": key})
        elif change.has_annotations:
            ops.append({"op": "add", "path": key, "value": ",".join(change.ours)})
        else:
            ops.append({"op": "add", "path": "/metadata/annotations",
                        "value": {model.SA_ANNOTATION: ",".join(change.ours)}})
    if change.track_fields:
        # The apiserver tracks fields on an update only if the object already has managedFields;
        # one entry of ours (what this very patch writes) starts it, so that the next writer
        # who takes our entry out is named (syncer.decide.fight).
        ops.append({"op": "add", "path": "/metadata/managedFields", "value": [{
            "manager": model.FIELD_MANAGER, "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:imagePullSecrets": {}}}]})
    return ops


def lease_body(item: model.Lease) -> JsonObject:
    """A full Lease (POST, or PUT carrying resourceVersion as its precondition)."""
    metadata: JsonObject = {"name": item.name, "namespace": item.namespace}
    if item.resource_version:
        metadata["resourceVersion"] = item.resource_version
    spec: JsonObject = {"leaseTransitions": item.transitions}
    optional = {"holderIdentity": item.holder, "leaseDurationSeconds": item.duration_seconds,
                "acquireTime": item.acquire_time, "renewTime": item.renew_time}
    spec.update({k: v for k, v in optional.items() if v is not None})
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": spec}


def eviction(namespace: str, name: str, *, uid: str = "") -> JsonObject:
    """A policy/v1 Eviction; with `uid`, only that Pod (not a newer one of the same name)."""
    body: JsonObject = {"apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": name, "namespace": namespace}}
    if uid:
        body["deleteOptions"] = {"preconditions": {"uid": uid}}
    return body


def event_namespace(ref: model.ObjectRef) -> str:
    """Where an Event about `ref` lives: its namespace, or `default` for a cluster-scoped
    object (a Namespace), as client-go does."""
    return "default" if ref.kind == "Namespace" else ref.namespace


def warning_event(ref: model.ObjectRef, *, reason: str, message: str, now: str) -> JsonObject:
    """A core/v1 Warning Event (`kubectl events` shows it; `kubectl describe` too, except for a
    Secret, whose description lists no Events)."""
    involved: JsonObject = {"apiVersion": "v1", "kind": ref.kind, "name": ref.name}
    if ref.kind != "Namespace":
        involved["namespace"] = ref.namespace
    if ref.uid:
        involved["uid"] = ref.uid
    return {
        "apiVersion": "v1", "kind": "Event", "type": "Warning",
        "metadata": {"generateName": f"{ref.name}.", "namespace": event_namespace(ref)},
        "involvedObject": involved, "reason": reason, "message": message[:1024],
        "count": 1, "firstTimestamp": now, "lastTimestamp": now,
        "source": {"component": "pullsecret-syncer"},
        "reportingComponent": "pullsecret-syncer",
    }
