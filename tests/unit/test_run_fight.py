"""The daemon in a fight, on FakeCluster with its real threads: another writer that puts a
ServiceAccount back to its declared `imagePullSecrets` whenever our entry appears gets a few
restores with growing pauses, a Warning Event naming it, and the gauge; a one-off edit elsewhere
is still repaired at once. The back-off is scaled down (0.4 s doubling) so this runs in seconds;
the real-stack test uses the shipped 30 s."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncer.core import settings
from syncer.decide import fight
from syncer.kube import fake
from syncer.run import daemon
from tests.unit import fakes

BASE = 0.4


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    path = fakes.write_config(tmp_path)
    cfg = fakes.load(path, monkeypatch)
    cluster = fake.FakeCluster()
    for ns in ("team-a", "team-b"):
        cluster.add_namespace(ns)
        cluster.put_service_account(ns, "default", image_pull_secrets=("declared",))
    backend = fakes.FakeBackend(fakes.basic())
    d = daemon.Daemon(settings.RunSettings(config_path=path), cfg, cluster=cluster,
                      backends={"vault": backend}, open_backends=lambda c: {"vault": backend},
                      watch_timeout=5, poll_interval=0.05,
                      fights=fight.Tracker(base=BASE, cap=4 * BASE))
    d.start()
    yield {"daemon": d, "cluster": cluster}
    d.shutdown()
    cluster.end_watches()
    for t in d.threads:
        t.join(5)


def names(cluster: fake.FakeCluster, ns: str, sa: str = "default") -> tuple[str, ...]:
    return tuple(cluster.stored("serviceaccounts", ns, sa).image_pull_secrets)


def test_a_writer_reverting_our_entry_gets_backed_off_restores_an_event_and_the_gauge(
        world: dict[str, Any]) -> None:
    d, cluster = world["daemon"], world["cluster"]
    fakes.eventually("first sync", lambda: "regcred" in names(cluster, "team-a"))
    stop = threading.Event()
    reverts = [0]

    def argo() -> None:  # self-heal: back to the declared list whenever our entry shows
        while not stop.wait(0.02):
            sa = cluster.stored("serviceaccounts", "team-a", "default")
            if "regcred" in sa.image_pull_secrets:
                cluster.put_service_account("team-a", "default", image_pull_secrets=(
                    "declared",), ours=sa.ours, manager="argocd-controller")
                reverts[0] += 1

    patches_before = cluster.requests["PATCH serviceaccounts"]
    fighter = threading.Thread(target=argo)
    fighter.start()
    started = time.monotonic()
    try:
        fakes.eventually("contested", lambda: d.metrics.contested_serviceaccounts.labels(
            mapping="teams")._value.get() == 1)
        # a one-off edit of another ServiceAccount is still repaired at once
        cluster.put_service_account("team-b", "default", image_pull_secrets=("declared",),
                                    ours=("regcred",), manager="kubectl-edit")
        fakes.eventually("one-off edit repaired", lambda: "regcred" in names(cluster, "team-b"),
                         timeout=2)
        time.sleep(max(0.0, 4.0 - (time.monotonic() - started)))
    finally:
        stop.set()
        fighter.join(5)
    ours = cluster.requests["PATCH serviceaccounts"] - patches_before - 1  # minus team-b's
    # 3 at once, then after 0.4, 0.8, 1.6 (1.6 capped): in 4 s no more than 3 + 3
    assert 4 <= ours <= 6, ours
    assert reverts[0] == ours + 1  # the first sync's entry and every restore were reverted
    events = [(ref.name, reason, msg) for ref, reason, msg in cluster.events
              if reason == fight.EVENT_REASON]
    assert len(events) == 1  # hourly, not per round
    assert events[0][0] == "default" and "'argocd-controller'" in events[0][2]
    assert "ignoreDifferences" in events[0][2]
    # the writer stopped: our entry is back within one back-off period (at most the cap)
    fakes.eventually("our entry back", lambda: "regcred" in names(cluster, "team-a"),
                     timeout=4 * BASE + 1)
