"""Watch caches on FakeCluster: list then watch, 410 re-lists, write-through ordering, bookmarks,
and the reconnect backoff."""

from __future__ import annotations

import dataclasses
import threading
import time

from syncer.core import model
from syncer.kube import api, errors, fake
from syncer.run import informer


def secret(ns: str, name: str, *, rv: str = "") -> model.Secret:
    return model.Secret(namespace=ns, name=name, managed=True, type=model.SECRET_TYPE,
                        digest=model.digest(b"{}"), data_keys=(model.DOCKERCONFIG_KEY,),
                        labels={model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE},
                        annotations={}, resource_version=rv)


def make(cluster: fake.FakeCluster, changes: list[str | None], *, kind: api.Kind = api.SECRETS,
         stop: threading.Event | None = None, watch_timeout: int = 0) -> informer.Informer:
    return informer.Informer(cluster, kind, on_change=changes.append,
                             stop=stop or threading.Event(), watch_timeout=watch_timeout,
                             rand=lambda: 1.0)


def test_list_then_watch_keeps_the_cache_and_names_the_namespaces_that_changed() -> None:
    cluster = fake.FakeCluster()
    cluster.add_namespace("a")
    cluster.put_secret(secret("a", "one"))
    changes: list[str | None] = []
    inf = make(cluster, changes)
    inf.relist()
    assert set(inf.items()) == {("a", "one")} and inf.synced.is_set()
    cluster.put_secret(secret("a", "two"))
    cluster.remove("secrets", "a", "one")
    assert inf.watch_once() is True
    assert set(inf.items()) == {("a", "two")}
    assert changes == ["a", "a"]


def test_a_namespace_change_names_the_namespace_itself() -> None:
    cluster = fake.FakeCluster()
    changes: list[str | None] = []
    inf = make(cluster, changes, kind=api.NAMESPACES)
    inf.relist()
    cluster.add_namespace("fresh")
    inf.watch_once()
    assert changes == ["fresh"]


def test_a_watch_event_older_than_our_write_through_does_not_overwrite_it() -> None:
    cluster = fake.FakeCluster()
    cluster.add_namespace("a")
    inf = make(cluster, [])
    inf.relist()
    cluster.put_secret(secret("a", "s"))  # the watch will deliver this one (older) ...
    ours = dataclasses.replace(cluster.stored("secrets", "a", "s"), resource_version="999",
                               digest=model.digest(b"ours"))
    inf.put(ours)  # ... after our own write went into the cache
    inf.watch_once()
    assert inf.items()[("a", "s")].digest == model.digest(b"ours")


def test_a_bookmark_moves_the_resource_version_and_changes_nothing() -> None:
    cluster = fake.FakeCluster()
    changes: list[str | None] = []
    inf = make(cluster, changes)
    inf.relist()
    before = inf.resource_version()
    cluster.bookmark("secrets")
    inf.watch_once()
    assert int(inf.resource_version()) > int(before or 0) and changes == []


def test_410_gone_makes_the_informer_list_again_and_look_at_everything() -> None:
    cluster = fake.FakeCluster()
    cluster.add_namespace("a")
    stop = threading.Event()
    changes: list[str | None] = []
    inf = make(cluster, changes, stop=stop, watch_timeout=1)
    thread = threading.Thread(target=inf.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while inf.relists < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        cluster.put_secret(secret("a", "missed"))
        cluster.compact()
        cluster.end_watches()  # the next watch starts from a compacted version: 410
        while inf.relists < 2:
            assert time.monotonic() < deadline, "no re-list after 410"
            time.sleep(0.01)
        assert ("a", "missed") in inf.items()
        assert changes.count(None) >= 2  # every re-list asks for a full pass
    finally:
        stop.set()
        thread.join(5)


def test_reconnect_backoff_grows_and_resets_after_a_healthy_watch() -> None:
    cluster = fake.FakeCluster()
    inf = make(cluster, [])
    delays = [inf.backoff() for _ in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    cluster.add_namespace("a")
    cluster.put_secret(secret("a", "s"))
    inf.watch_once()  # delivered events: healthy again
    assert inf.backoff() == 1.0


def test_a_cut_watch_raises_and_keeps_the_cache() -> None:
    cluster = fake.FakeCluster()
    cluster.add_namespace("a")
    cluster.put_secret(secret("a", "s"))
    inf = make(cluster, [], watch_timeout=5)
    inf.relist()
    done: list[BaseException] = []

    def watch() -> None:
        try:
            inf.watch_once()
        except errors.KubeError as exc:
            done.append(exc)

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.05)
    cluster.end_watches(error=errors.Retryable("WATCH secrets: connection reset"))
    thread.join(5)
    assert isinstance(done[0], errors.Retryable) and ("a", "s") in inf.items()
