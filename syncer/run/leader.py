"""Leader election with a `coordination.k8s.io/v1` Lease, the way client-go does it.

A candidate takes the Lease when it is free, released, or has not been renewed for its duration
as observed on our own clock (clocks of different machines are never compared). The leader
renews every retry period and gives up when it could not renew within the renew deadline.
Every write to the Lease carries its resourceVersion, so two candidates never both win.
Like client-go's `resourcelock`, the elector takes a lock interface (`api.LeaseLock`: three Lease
verbs), not a client.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from syncer.core import model
from syncer.kube import api, errors

log = logging.getLogger("syncer.run")

LEASE_NAME = "pullsecret-syncer"


def micro_time() -> str:
    """Now as a Kubernetes MicroTime."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(self, lock: api.LeaseLock, *, namespace: str, identity: str,
                 on_started: Callable[[], None], on_stopped: Callable[[], None],
                 stop: threading.Event, name: str = LEASE_NAME, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 timestamp: Callable[[], str] = micro_time) -> None:
        self._lock = lock
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._stop = stop
        self._duration = lease_duration
        self._deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._timestamp = timestamp
        self._observed: tuple[str | None, str | None, int | None] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self.is_leader = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.retry_period)

    def leading(self) -> bool:
        """Whether this replica may write now — asked before every write, not only a flag.

        A leader whose renewal hangs (a request stuck in its read timeout) is still flagged as
        leader until that request returns, which can be after its Lease expired and a standby
        took over. So the flag counts only while the last successful renewal *started* less
        than the renew deadline ago: that start is no later than the moment any other replica
        saw the renewed Lease, so writes stop at least lease duration minus renew deadline (5 s by
        default) before another replica may take over.
        """
        return self.is_leader.is_set() and self._clock() - self._last_renew < self._deadline

    def step(self) -> None:
        """One try to acquire or renew, and the transitions it implies."""
        started = self._clock()
        try:
            ok = self._try_acquire_or_renew()
        except errors.KubeError as exc:
            log.warning("lease update failed", extra={"error": str(exc)})
            ok = False
        now = self._clock()
        if ok:  # a renewal that took longer than the deadline leaves leading() false until
            self._last_renew = started  # the next one: it says nothing of the time in between
            if not self.is_leader.is_set():
                log.info("became leader", extra={"object": self.identity})
                self.is_leader.set()
                self._on_started()
        elif self.is_leader.is_set() and now - self._last_renew > self._deadline:
            log.error("lost leadership: lease not renewed within the deadline",
                      extra={"object": self.identity})
            self.is_leader.clear()
            self._on_stopped()

    def _ours(self, old: model.Lease | None) -> model.Lease:
        now = self._timestamp()
        mine = old is not None and old.holder == self.identity
        transitions = old.transitions if old is not None else 0
        return model.Lease(
            namespace=self.namespace, name=self.name, holder=self.identity,
            duration_seconds=int(self._duration),
            acquire_time=old.acquire_time if (mine and old is not None) else now,
            renew_time=now,
            transitions=transitions if mine or old is None else transitions + 1,
            resource_version=old.resource_version if old is not None else "")

    def _try_acquire_or_renew(self) -> bool:
        try:
            lease = self._lock.get_lease(self.namespace, self.name)
        except errors.NotFound:
            try:
                self._lock.create_lease(self._ours(None))
            except errors.Conflict:  # AlreadyExists: someone else was first
                return False
            return True
        record = (lease.holder, lease.renew_time, lease.duration_seconds)
        now = self._clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(lease.duration_seconds or self._duration)
        if lease.holder and lease.holder != self.identity and now < self._observed_at + duration:
            return False  # someone else holds a live lease
        try:
            self._lock.update_lease(self._ours(lease))
        except errors.Conflict:
            return False
        return True

    def release(self) -> None:
        """Give the Lease up at shutdown so a standby takes over at once."""
        if not self.is_leader.is_set():
            return
        self.is_leader.clear()
        try:
            lease = self._lock.get_lease(self.namespace, self.name)
            if lease.holder != self.identity:
                return
            self._lock.update_lease(dataclasses.replace(
                lease, holder=None, duration_seconds=1, renew_time=self._timestamp()))
            log.info("released leadership", extra={"object": self.identity})
        except errors.KubeError as exc:
            log.warning("could not release the lease", extra={"error": str(exc)})
