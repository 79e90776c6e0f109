"""Leader election with a `coordination.k8s.io/v1` Lease, the way client-go does it.

A candidate takes the Lease when it is free, released, or has not been renewed for its duration
as observed on our own clock (clocks of different machines are never compared). The leader
renews every retry period and gives up when it could not renew within the renew deadline.
Every write to the Lease carries its resourceVersion, so two candidates never both win.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from syncer import kube

log = logging.getLogger(__name__)

LEASE_NAME = "pullsecret-syncer"


def _now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(self, client: kube.Kube, *, namespace: str, identity: str,
                 on_started: Callable[[], None], on_stopped: Callable[[], None],
                 stop: threading.Event, name: str = LEASE_NAME, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._stop = stop
        self._duration = lease_duration
        self._deadline = renew_deadline
        self._retry = retry_period
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self.is_leader = threading.Event()
        self.thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ok = self._try_acquire_or_renew()
            except kube.KubeError as exc:
                log.warning("lease update failed", extra={"error": str(exc)})
                ok = False
            now = self._clock()
            if ok:
                self._last_renew = now
                if not self.is_leader.is_set():
                    log.info("became leader", extra={"object": self.identity})
                    self.is_leader.set()
                    self._on_started()
            elif self.is_leader.is_set() and now - self._last_renew > self._deadline:
                log.error("lost leadership: lease not renewed within the deadline",
                          extra={"object": self.identity})
                self.is_leader.clear()
                self._on_stopped()
            self._stop.wait(self._retry)

    def _spec(self, old: dict[str, Any] | None) -> dict[str, Any]:
        old_spec = (old or {}).get("spec") or {}
        now = _now_micro()
        transitions = int(old_spec.get("leaseTransitions") or 0)
        mine = old_spec.get("holderIdentity") == self.identity
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self._duration),
            "acquireTime": old_spec.get("acquireTime") if mine else now,
            "renewTime": now,
            "leaseTransitions": transitions if mine or old is None else transitions + 1,
        }

    def _try_acquire_or_renew(self) -> bool:
        try:
            lease = self._client.get_json(self._path, f"GET leases {self.namespace}/{self.name}")
        except kube.NotFound:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(None)}
            try:
                self._client.write_json(
                    "POST", f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
                    f"POST leases {self.namespace}/{self.name}", body=body)
            except kube.Conflict:
                return False
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        now = self._clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self._duration)
        if holder and holder != self.identity and now < self._observed_at + duration:
            return False  # someone else holds a live lease
        lease["spec"] = self._spec(lease)
        try:
            self._client.write_json("PUT", self._path, f"PUT leases {self.namespace}/{self.name}",
                                    body=lease)
        except kube.Conflict:
            return False
        return True

    def release(self) -> None:
        """Give the Lease up at shutdown so a standby takes over at once."""
        if not self.is_leader.is_set():
            return
        self.is_leader.clear()
        try:
            lease = self._client.get_json(self._path, f"GET leases {self.namespace}/{self.name}")
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update({"holderIdentity": None, "leaseDurationSeconds": 1,
                         "renewTime": _now_micro()})
            lease["spec"] = spec
            self._client.write_json("PUT", self._path,
                                    f"PUT leases {self.namespace}/{self.name}", body=lease)
            log.info("released leadership", extra={"object": self.identity})
        except kube.KubeError as exc:
            log.warning("could not release the lease", extra={"error": str(exc)})
