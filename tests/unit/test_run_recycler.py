"""Pod recycling in the daemon, on FakeCluster: a Pod created in the race window is evicted once
and comes back with the Secret; Pods are watched only while some mapping recycles; without the
RBAC grant one error is logged, the rest keeps working, and a reload retries at once; a budget's
refusal is asked again later; only the leader evicts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncer.core import model, settings
from syncer.kube import errors, fake
from syncer.run import daemon, informer, recycler
from syncer.telemetry import observability
from tests.unit import fakes

IMAGE = "ghcr.io/org/app:1"  # the `ghcr` credential of tests/unit/fakes.py covers it
RECYCLE = "    recyclePods: true\n"


def stuck_pod(cluster: fake.FakeCluster, ns: str, name: str, **kw: Any) -> model.Pod:
    return cluster.add_pod(ns, name, waiting=((IMAGE, "ImagePullBackOff"),), **kw)


def race_window(cluster: fake.FakeCluster, ns: str) -> None:
    """A namespace, its account and a Deployment's Pod, all before the syncer got to it."""
    cluster.add_namespace(ns)
    cluster.put_service_account(ns, "default")
    stuck_pod(cluster, ns, "web-1")


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    made: list[tuple[daemon.Daemon, fake.FakeCluster]] = []

    def make(cluster: fake.FakeCluster, *, extra: str = RECYCLE) -> daemon.Daemon:
        path = fakes.write_config(tmp_path, extra=extra)
        backend = fakes.FakeBackend(fakes.basic())
        d = daemon.Daemon(settings.RunSettings(config_path=path), fakes.load(path, monkeypatch),
                          cluster=cluster, backends={"vault": backend},
                          open_backends=lambda c: {"vault": backend}, watch_timeout=1,
                          poll_interval=0.05)
        d.start()
        made.append((d, cluster))
        return d

    yield make
    for d, cluster in made:
        d.shutdown()
        cluster.end_watches()
        for t in d.threads:
            t.join(5)


def test_a_pod_created_before_the_secret_is_evicted_once_and_comes_back_with_it(
        start: Callable[..., daemon.Daemon]) -> None:
    cluster = fake.FakeCluster()
    race_window(cluster, "team-race")
    d = start(cluster)
    fakes.eventually("the stuck Pod evicted",
                     lambda: cluster.stored("pods", "team-race", "web-1") is None)
    again = cluster.add_pod("team-race", "web-2")  # the ReplicaSet's replacement
    assert "regcred" in again.image_pull_secrets  # the admission plugin copied it
    time.sleep(0.3)
    assert cluster.requests["POST pods/eviction"] == 1
    assert d.metrics.pods_recycled.labels(mapping="teams")._value.get() == 1
    assert cluster.stored("pods", "team-race", "web-2") is not None


def test_a_bare_pod_gets_the_event_and_is_never_deleted(
        start: Callable[..., daemon.Daemon]) -> None:
    cluster = fake.FakeCluster()
    cluster.add_namespace("team-bare")
    cluster.put_service_account("team-bare", "default")
    stuck_pod(cluster, "team-bare", "bare", controller=False)
    start(cluster)
    fakes.eventually("the Warning Event",
                     lambda: [r for ref, r, _ in cluster.events if ref.name == "bare"])
    assert cluster.stored("pods", "team-bare", "bare") is not None
    assert cluster.requests["POST pods/eviction"] == 0


def test_no_pod_is_listed_while_no_mapping_recycles_and_a_reload_turns_it_on_and_off(
        start: Callable[..., daemon.Daemon], tmp_path: Path) -> None:
    cluster = fake.FakeCluster()
    race_window(cluster, "team-late")
    d = start(cluster, extra="")
    fakes.eventually("ready", d.is_ready)
    time.sleep(0.3)
    assert cluster.requests["LIST pods"] == 0 and d.recycler.pods is None
    fakes.write_config(tmp_path, extra=RECYCLE)
    fakes.eventually("recycling on after the reload", lambda: cluster.stored(
        "pods", "team-late", "web-1") is None)
    fakes.write_config(tmp_path, extra="")
    fakes.eventually("the Pod watch stopped", lambda: d.recycler.pods is None)
    stuck_pod(cluster, "team-late", "web-3", image_pull_secrets=())
    time.sleep(0.3)
    assert cluster.stored("pods", "team-late", "web-3") is not None


def test_without_the_grant_one_error_and_secrets_are_still_synced(
        start: Callable[..., daemon.Daemon], caplog: pytest.LogCaptureFixture) -> None:
    cluster = fake.FakeCluster()

    def no_pods(req: fake.Request) -> None:
        if req.kind.startswith("pods"):
            raise errors.Forbidden(f"{req.verb} pods: 403 Forbidden", status=403)

    cluster.fault = no_pods
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="syncer.reconcile"):
        race_window(cluster, "team-denied")
        d = start(cluster)
        fakes.eventually("synced anyway",
                         lambda: cluster.stored("secrets", "team-denied", "regcred"))
        fakes.eventually("the error", lambda: d.recycler.read_denied.active)
        d.reload_requested.set()  # SIGHUP: try again at once
        fakes.eventually("a second refused attempt", lambda: d.metrics.reconcile_errors.labels(
            reason="recycle_forbidden")._value.get() >= 2)
        assert d.healthy()
        errors_logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors_logged] == [
            "recyclePods is on but not allowed to read pods (403): add the recycle-pods RBAC "
            "component; everything else keeps working; retrying every 5 minutes"]
        cluster.fault = None  # the grant is added
        d.reload_requested.set()
        fakes.eventually("evicted once allowed", lambda: cluster.stored(
            "pods", "team-denied", "web-1") is None)
    assert any("allowed to read pods now" in r.getMessage() for r in caplog.records)


# --- the recycler alone, stepped with a fake clock ------------------------------------------


def stepped(cluster: fake.FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *,
            leading: bool = True) -> tuple[recycler.Recycler, fakes.FakeClock]:
    """A Recycler with a Pod cache listed by hand and a view straight from the cluster."""
    from syncer.reconcile import observe

    cfg = fakes.load(fakes.write_config(tmp_path, extra=RECYCLE), monkeypatch)
    creds = {"ghcr": {"ghcr.io": {"auth": "eDp5"}}}
    clock = fakes.FakeClock()
    stop = threading.Event()
    r = recycler.Recycler(cluster, metrics=observability.Metrics(), stop=stop,
                          view=lambda: observe.observe(cluster, cfg), credentials=lambda: creds,
                          ready=lambda: True, leading=lambda: leading, clock=clock)
    r.configure(cfg)
    r.pods = informer.Informer(cluster, recycler.api.PODS, selector=recycler.api.PENDING,
                               on_change=r.notify, stop=stop, watch_timeout=0)
    r.pods.relist()
    return r, clock


def synced_namespace(cluster: fake.FakeCluster, ns: str) -> None:
    cluster.add_namespace(ns)
    cluster.put_service_account(ns, "default", image_pull_secrets=("regcred",),
                                ours=("regcred",))
    cluster.put_secret(model.Secret(ns, "regcred", True, model.SECRET_TYPE, b"{}",
                                    (model.DOCKERCONFIG_KEY,),
                                    {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE}, {}, ""))


def test_a_budgets_refusal_is_asked_again_a_minute_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = fake.FakeCluster()
    synced_namespace(cluster, "team-pdb")
    stuck_pod(cluster, "team-pdb", "web-1", image_pull_secrets=())
    refusals: list[str] = []

    def budget(req: fake.Request) -> None:
        if req.kind == "pods/eviction" and len(refusals) < 1:
            refusals.append(req.name)
            raise errors.TooManyRequests("429 TooManyRequests: disruption budget", status=429)

    cluster.fault = budget
    r, clock = stepped(cluster, tmp_path, monkeypatch)
    assert r.work_once(timeout=0)
    assert cluster.stored("pods", "team-pdb", "web-1") is not None  # not forced
    r.notify("team-pdb")
    r.work_once(timeout=0)
    assert refusals == ["web-1"] and cluster.requests["POST pods/eviction"] == 0
    clock.advance(61)
    assert r.work_once(timeout=0)
    assert cluster.stored("pods", "team-pdb", "web-1") is None


def test_only_the_leader_evicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = fake.FakeCluster()
    synced_namespace(cluster, "team-standby")
    stuck_pod(cluster, "team-standby", "web-1", image_pull_secrets=())
    r, _ = stepped(cluster, tmp_path, monkeypatch, leading=False)
    assert not r.work_once(timeout=0)
    assert cluster.stored("pods", "team-standby", "web-1") is not None
