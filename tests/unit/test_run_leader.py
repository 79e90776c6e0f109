"""Lease leader election on FakeCluster with a fake clock: acquire, renew, loss, release."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from syncer.kube import errors, fake
from syncer.run import leader
from tests.unit import fakes

NS = "pss-system"


class Candidate:
    def __init__(self, cluster: fake.FakeCluster, clock: fakes.FakeClock, name: str) -> None:
        self.started = 0
        self.stopped = 0
        ticks = iter(range(10**6))
        self.elector = leader.LeaderElector(
            cluster, namespace=NS, identity=name, stop=threading.Event(), clock=clock,
            on_started=self._start, on_stopped=self._stop,
            timestamp=lambda: f"2026-12-01T00:00:{next(ticks) % 60:02d}.000000Z")

    def _start(self) -> None:
        self.started += 1

    def _stop(self) -> None:
        self.stopped += 1

    @property
    def leading(self) -> bool:
        return self.elector.is_leader.is_set()


@pytest.fixture
def cluster() -> fake.FakeCluster:
    c = fake.FakeCluster()
    c.add_namespace(NS)
    return c


def test_the_first_candidate_creates_the_lease_and_leads(cluster: fake.FakeCluster) -> None:
    a = Candidate(cluster, fakes.FakeClock(), "a")
    a.elector.step()
    assert a.leading and a.started == 1
    assert cluster.stored("leases", NS, "pullsecret-syncer").holder == "a"
    a.elector.step()
    assert a.started == 1  # renewing is not starting again


def test_a_renewing_leader_keeps_the_lease_against_a_standby(cluster: fake.FakeCluster) -> None:
    clock = fakes.FakeClock()
    a, b = Candidate(cluster, clock, "a"), Candidate(cluster, clock, "b")
    a.elector.step()
    for _ in range(20):  # 40 s: well past the 15 s lease, renewed every 2 s
        clock.advance(2)
        a.elector.step()
        b.elector.step()
    assert a.leading and not b.leading


def test_a_standby_takes_over_once_the_lease_was_not_renewed_for_its_duration(
        cluster: fake.FakeCluster) -> None:
    clock = fakes.FakeClock()
    a, b = Candidate(cluster, clock, "a"), Candidate(cluster, clock, "b")
    a.elector.step()
    b.elector.step()  # observes a's lease now
    clock.advance(14)
    b.elector.step()
    assert not b.leading
    clock.advance(2)
    b.elector.step()
    assert b.leading
    lease = cluster.stored("leases", NS, "pullsecret-syncer")
    assert (lease.holder, lease.transitions) == ("b", 1)


def test_a_leader_that_cannot_renew_within_the_deadline_steps_down(
        cluster: fake.FakeCluster) -> None:
    clock = fakes.FakeClock()
    a = Candidate(cluster, clock, "a")
    a.elector.step()

    def apiserver_down(req: fake.Request) -> None:
        if req.kind == "leases":
            raise errors.Retryable("leases: 503")

    cluster.fault = apiserver_down
    clock.advance(8)
    a.elector.step()
    assert a.leading  # within the 10 s renew deadline
    clock.advance(3)
    a.elector.step()
    assert not a.leading and a.stopped == 1


def test_release_lets_a_standby_lead_at_once(cluster: fake.FakeCluster) -> None:
    clock = fakes.FakeClock()
    a, b = Candidate(cluster, clock, "a"), Candidate(cluster, clock, "b")
    a.elector.step()
    b.elector.step()
    a.elector.release()
    assert not a.leading
    assert cluster.stored("leases", NS, "pullsecret-syncer").holder is None
    b.elector.step()
    assert b.leading


def test_two_candidates_racing_for_the_lease_never_both_win(cluster: fake.FakeCluster) -> None:
    clock = fakes.FakeClock()
    a, b = Candidate(cluster, clock, "a"), Candidate(cluster, clock, "b")
    a.elector.step()
    clock.advance(30)  # a's lease expired for everyone

    def b_writes_first(req: fake.Request) -> None:
        if req.verb == "PUT" and req.kind == "leases" and not b.leading:
            cluster.fault = None
            b.elector.step()

    cluster.fault = b_writes_first
    b.elector.step()  # observe the stale holder
    clock.advance(16)
    a.elector.step()  # a's PUT carries a stale resourceVersion after b's: Conflict
    assert b.leading != a.leading


class StuckLock:
    """A LeaseLock whose reads hang (as a request stuck in its read timeout) while `stuck`."""

    def __init__(self, cluster: fake.FakeCluster) -> None:
        self._cluster = cluster
        self.stuck = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()

    def get_lease(self, namespace: str, name: str):  # type: ignore[no-untyped-def]
        if self.stuck.is_set():
            self.entered.set()
            self.release.wait(10)
        return self._cluster.get_lease(namespace, name)

    def create_lease(self, lease):  # type: ignore[no-untyped-def]
        return self._cluster.create_lease(lease)

    def update_lease(self, lease):  # type: ignore[no-untyped-def]
        return self._cluster.update_lease(lease)


def test_a_leader_whose_renewal_hangs_stops_writing_before_its_lease_can_expire(
        cluster: fake.FakeCluster) -> None:
    clock = fakes.FakeClock()
    lock = StuckLock(cluster)
    elector = leader.LeaderElector(
        lock, namespace=NS, identity="a", stop=threading.Event(), clock=clock,
        on_started=lambda: None, on_stopped=lambda: None)
    elector.step()
    assert elector.leading()

    lock.stuck.set()
    renewal = threading.Thread(target=elector.step)  # the renewal hangs in its read
    clock.advance(2)
    renewal.start()
    assert lock.entered.wait(5)
    clock.advance(7.9)  # 9.9 s since the last renewal started: still inside the deadline
    assert elector.leading()
    clock.advance(0.2)  # 10.1 s: past the renew deadline, 4.9 s before the lease (15 s) ends
    assert elector.is_leader.is_set()  # the flag alone would still say "write"
    assert not elector.leading()  # but no write is allowed any more

    clock.advance(20)  # the stuck request returns long after the lease could have expired
    lock.stuck.clear()
    lock.release.set()
    renewal.join(5)
    assert not elector.leading()  # a late renewal does not count for the time it hung
    clock.advance(2)
    elector.step()  # a prompt renewal does
    assert elector.leading()


def test_the_daemon_writes_only_while_the_elector_is_inside_its_renew_deadline(
        cluster: fake.FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`Daemon.leading` — the `proceed` asked before every write of a pass — follows the
    elector's deadline, not its flag."""
    from syncer.core import settings
    from syncer.run import daemon

    path = fakes.write_config(tmp_path)
    backend = fakes.FakeBackend(fakes.basic())
    d = daemon.Daemon(settings.RunSettings(config_path=path), fakes.load(path, monkeypatch),
                      cluster=cluster, backends={"vault": backend},
                      open_backends=lambda c: {"vault": backend})
    clock = fakes.FakeClock()
    d.elector = leader.LeaderElector(
        cluster, namespace=NS, identity="a", stop=d.stop, clock=clock,
        on_started=lambda: None, on_stopped=lambda: None)
    d.elector.step()
    assert d.leading()

    clock.advance(10.5)  # no renewal since (it hangs): the flag is still set

    assert d.elector.is_leader.is_set()
    assert not d.leading()
