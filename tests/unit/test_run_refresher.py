"""The refresher with a fake clock and a fake backend: the schedule, backoff, change detection,
and reconfiguration; plus the work queue and the loop supervisor."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from backends import base
from syncer import config
from syncer.core import renewal
from syncer.run import loops, queue, refresher
from syncer.telemetry import observability
from tests.unit import fakes


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Config:
    return fakes.load(fakes.write_config(tmp_path), monkeypatch)


def make(cfg: config.Config, backend: Any, clock: fakes.FakeClock,
         changed: list[set[str]]) -> refresher.Refresher:
    r = refresher.Refresher(metrics=observability.Metrics(), on_change=changed.append,
                            stop=threading.Event(), clock=clock, wall=clock, rand=lambda: 0.5)
    r.configure(cfg, {"vault": backend})
    return r


def test_each_credential_is_read_once_per_interval(cfg: config.Config) -> None:
    clock, changed = fakes.FakeClock(), []
    backend = fakes.FakeBackend(fakes.basic())
    r = make(cfg, backend, clock, changed)
    assert r.step() == 60.0
    assert sorted(backend.reads) == ["ghcr", "hub"] and changed == [{"ghcr", "hub"}]
    clock.advance(30)
    assert r.step() == 30.0 and len(backend.reads) == 2
    clock.advance(30)
    r.step()
    assert len(backend.reads) == 4 and changed == [{"ghcr", "hub"}]  # same content: no change


def test_a_rotation_reports_only_the_changed_credential(cfg: config.Config) -> None:
    clock, changed = fakes.FakeClock(), []
    passwords = {"hub": "one", "ghcr": "one"}
    r = make(cfg, fakes.FakeBackend(lambda ref: {"username": "u",
                                                 "password": passwords[ref.name]}),
             clock, changed)
    r.step()
    passwords["hub"] = "two"
    clock.advance(60)
    r.step()
    assert changed == [{"ghcr", "hub"}, {"hub"}]


def test_a_failing_read_keeps_the_last_good_value_and_backs_off(cfg: config.Config) -> None:
    clock, changed = fakes.FakeClock(), []
    down = {"now": False}

    def answer(ref: base.CredentialRef) -> dict[str, Any]:
        if down["now"]:
            raise base.Unavailable("vault backend 'vault': read: cannot connect")
        return {"username": "u", "password": fakes.PW}

    backend = fakes.FakeBackend(answer)
    r = make(cfg, backend, clock, changed)
    r.step()
    good = r.values()
    down["now"] = True
    clock.advance(60)
    waits = [r.step()]
    for _ in range(7):
        clock.advance(waits[-1])
        waits.append(r.step())
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]  # capped at the interval
    assert r.values() == good
    down["now"] = False
    clock.advance(60)
    r.step()
    assert r.step() == 60.0  # healthy again: back on the interval


def test_backoff_is_jittered_by_a_quarter_either_way() -> None:
    assert renewal.backoff(3, 60, rand=lambda: 0.0) == 3.0
    assert renewal.backoff(3, 60, rand=lambda: 1.0) == 5.0
    assert renewal.backoff(30, 60, rand=lambda: 1.0) == 60


def test_reconfiguring_keeps_the_schedule_of_unchanged_credentials(
        cfg: config.Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, changed = fakes.FakeClock(), []
    backend = fakes.FakeBackend(fakes.basic())
    r = make(cfg, backend, clock, changed)
    r.step()
    edited = fakes.load(fakes.write_config(tmp_path, name="b.yaml", extra="""\
  - name: more
    namespaces: {names: [extra]}
    credentials: [hub]
"""), monkeypatch)
    r.configure(edited, {"vault": backend})
    clock.advance(1)
    r.step()
    assert len(backend.reads) == 2  # nothing re-read: same credentials, same specs


def test_refresh_all_reads_everything_now(cfg: config.Config) -> None:
    clock, changed = fakes.FakeClock(), []
    backend = fakes.FakeBackend(fakes.basic())
    r = make(cfg, backend, clock, changed)
    r.step()
    r.refresh_all()
    r.step()
    assert len(backend.reads) == 4


# --- the work queue ----------------------------------------------------------------------------


def test_queued_namespaces_collapse_and_none_means_everything() -> None:
    q = queue.WorkQueue()
    for ns in ("a", "b", "a"):
        q.add(ns)
    assert q.take(timeout=0) == (False, {"a", "b"})
    q.add("c")
    q.add(None)
    assert q.take(timeout=0) == (True, {"c"})
    assert q.take(timeout=0) is None


def test_a_delayed_retry_comes_due_on_the_queue_clock() -> None:
    clock = fakes.FakeClock()
    q = queue.WorkQueue(clock=clock)
    q.add_after(30, {"a"})
    assert q.take(timeout=0) is None and q.delayed() == 1
    clock.advance(30)
    assert q.take(timeout=0) == (False, {"a"}) and q.delayed() == 0


# --- supervised loops --------------------------------------------------------------------------


def test_a_loop_that_crashes_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    metrics = observability.Metrics()
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise KeyError("password-SENTINEL")
        stop.set()

    clock = fakes.FakeClock()
    with caplog.at_level(logging.ERROR):
        loops.supervised("worker", body, stop=stop, metrics=metrics, wait=clock.wait)()
    assert len(runs) == 3
    errors = [r for r in caplog.records if r.getMessage() == "loop failed unexpectedly; "
              "restarting it"]
    assert len(errors) == 2 and errors[0].__dict__["error"].startswith("KeyError at ")
    assert "SENTINEL" not in caplog.text
    assert 'reason="internal"} 2.0' in metrics.render().decode()


def test_a_value_the_gate_refuses_is_never_published_nor_checked_again(
        cfg: config.Config) -> None:
    clock, changed = fakes.FakeClock(), []
    password = {"now": "good"}
    checked: list[str] = []

    def gate(spec: config.CredentialSpec, auths: Any) -> bool:
        checked.append(password["now"])
        return password["now"] != "typo"

    r = refresher.Refresher(metrics=observability.Metrics(), on_change=changed.append,
                            stop=threading.Event(), clock=clock, wall=clock, rand=lambda: 0.5,
                            gate=gate)
    r.configure(cfg, {"vault": fakes.FakeBackend(
        lambda ref: {"username": "u", "password": password["now"]})})
    r.step()
    good = r.values()
    password["now"] = "typo"
    for _ in range(3):
        clock.advance(60)
        r.step()
    assert r.values() == good and checked == ["good", "good", "typo", "typo"]
    password["now"] = "fixed"
    clock.advance(60)
    r.step()
    assert r.values() != good and changed[-1] == {"ghcr", "hub"}
