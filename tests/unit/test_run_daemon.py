"""The daemon on FakeCluster, with its real threads but no HTTP server: it syncs what appears,
survives every kind of broken config reload, and retries failed passes through the queue."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncer import config
from syncer.core import settings
from syncer.kube import errors, fake
from syncer.run import daemon
from tests.unit import fakes


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    path = fakes.write_config(tmp_path)
    cfg = fakes.load(path, monkeypatch)
    cluster = fake.FakeCluster()
    backend = fakes.FakeBackend(fakes.basic())
    d = daemon.Daemon(settings.RunSettings(config_path=path), cfg, cluster=cluster,
                      backends={"vault": backend}, open_backends=lambda c: {"vault": backend},
                      watch_timeout=5, poll_interval=0.05)
    d.start()
    yield {"daemon": d, "cluster": cluster, "path": path, "backend": backend}
    d.shutdown()
    cluster.end_watches()
    for t in d.threads:
        t.join(5)


def synced(cluster: fake.FakeCluster, ns: str) -> bool:
    sa = cluster.stored("serviceaccounts", ns, "default")
    return cluster.stored("secrets", ns, "regcred") is not None and sa is not None and (
        "regcred" in sa.image_pull_secrets)


def new_namespace(cluster: fake.FakeCluster, name: str) -> str:
    cluster.add_namespace(name)
    cluster.put_service_account(name, "default")
    return name


def test_a_new_namespace_is_synced_within_moments(world: dict[str, Any]) -> None:
    d, cluster = world["daemon"], world["cluster"]
    fakes.eventually("ready", d.is_ready)
    ns = new_namespace(cluster, "team-new")
    fakes.eventually("the new namespace synced", lambda: synced(cluster, ns))
    assert d.healthy()


BROKEN = {
    "syntax": "version: 1\nmappings: [\n",
    "date": "version: 2024-02-30\n",
    "tag": "version: !!int abc\n",
    "unknown key": "version: 1\nbackends: {}\ncredentials: {}\nmappings: []\nsurprise: 1\n",
    "wrong type": "version: 1\nbackends: {}\ncredentials: {}\nmappings: {}\n",
    "unknown reference": ("version: 1\nbackends: {}\ncredentials: {}\nmappings:\n"
                          "  - {name: m, namespaces: {names: [a]}, credentials: [ghrc]}\n"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_config_on_reload_is_rejected_and_the_old_one_keeps_running(
        world: dict[str, Any], kind: str, caplog: pytest.LogCaptureFixture) -> None:
    d, cluster, path = world["daemon"], world["cluster"], world["path"]
    fakes.eventually("ready", d.is_ready)
    old = d.cfg
    with caplog.at_level(logging.ERROR):
        path.write_text(BROKEN[kind])
        d.reload_requested.set()  # like SIGHUP; the file watch would see it within a second
        fakes.eventually("the rejection logged", lambda: any(
            "config rejected" in r.getMessage() for r in caplog.records))
    assert d.cfg is old and d.healthy()
    assert any(str(path) in str(r.__dict__.get("error", "")) for r in caplog.records)
    ns = new_namespace(cluster, f"team-after-{kind.replace(' ', '-')}")
    fakes.eventually("a new namespace synced with the old config", lambda: synced(cluster, ns))


def test_a_loader_bug_on_reload_keeps_the_old_config(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    d = world["daemon"]
    old = d.cfg

    def broken_loader(path: Any) -> config.Config:
        raise TypeError("an unexpected bug")

    monkeypatch.setattr(config, "load", broken_loader)
    with caplog.at_level(logging.ERROR):
        d.reload()
    assert d.cfg is old
    rejected = [r for r in caplog.records if "config rejected" in r.getMessage()]
    assert rejected and "TypeError at " in rejected[0].__dict__["error"]


def test_a_failed_pass_is_retried_later_through_the_queue(world: dict[str, Any]) -> None:
    d, cluster = world["daemon"], world["cluster"]
    fakes.eventually("ready", d.is_ready)

    def refuse_secrets(req: fake.Request) -> None:
        if req.verb == "POST" and req.kind == "secrets":
            raise errors.Invalid("POST secrets: 422 Invalid", status=422)

    cluster.fault = refuse_secrets
    ns = new_namespace(cluster, "team-flaky")
    fakes.eventually("a retry scheduled", lambda: d.queue.delayed() >= 1)
    cluster.fault = None
    d.queue.add_after(0, None)  # do not wait for the 2 s backoff in a unit test
    fakes.eventually("synced after the retry", lambda: synced(cluster, ns))


def test_every_loop_thread_is_alive_and_named(world: dict[str, Any]) -> None:
    names = {t.name for t in world["daemon"].threads}
    assert names == {"watch-namespaces", "watch-serviceaccounts", "watch-secrets", "refresh",
                     "worker", "housekeeping", "watch-pods", "recycle"}
    assert world["daemon"].healthy()
