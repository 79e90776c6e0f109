"""Progress as a user sees it: past-tense lines, the plan's write-time estimate at the rate
limit, the time left during a pass, plain progress lines at most every 10 s (fake clock), the
live bar that leaves nothing behind, and the daemon's progress log of a long full pass."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncer.core import model, settings
from syncer.decide import plan, progress
from syncer.kube import fake
from syncer.present import actions as render
from syncer.present import display, summary
from syncer.run import daemon
from syncer.telemetry import observability
from tests import screen
from tests.unit import fakes

NS = "team-a"


def content(ns: str = NS, creds: tuple[str, ...] = ("dockerhub", "ghcr")) -> model.SecretContent:
    return model.SecretContent(ns, "regcred", "m", creds, fakes.PW.encode())


def creates(n: int) -> list[plan.Action]:
    return [plan.CreateSecret(content(f"ns-{i:03d}")) for i in range(n)]


# --- vocabulary --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "line"),
    [
        (plan.CreateSecret(content()), "created secret team-a/regcred (dockerhub, ghcr)"),
        (plan.UpdateSecret(content(creds=("dockerhub",)), "1"),
         "updated secret team-a/regcred (dockerhub)"),
        (plan.UpdateSecret(content(creds=("dockerhub",)), "1", adopt=True),
         "adopted secret team-a/regcred (dockerhub)"),
        (plan.ReplaceSecret(content(creds=("dockerhub",)), "1", "immutable",
                            observed_uid="uid-1"),
         "replaced secret team-a/regcred (dockerhub)"),
        (plan.DeleteSecret(NS, "regcred", "1", credentials=("ghcr",)),
         "deleted secret team-a/regcred (ghcr)"),
        (plan.PatchServiceAccount(NS, "default", "7", add=("regcred",)),
         "patched serviceaccount team-a/default +regcred"),
        (plan.PatchServiceAccount(NS, "default", "7", remove=("regcred",)),
         "unpatched serviceaccount team-a/default -regcred"),
    ],
)
def test_an_applied_write_is_described_in_the_past_tense_of_plan(action: plan.Action,
                                                                  line: str) -> None:
    assert render.describe_done(action) == line
    assert fakes.PW not in line


def test_any_new_verb_gets_a_regular_past_tense() -> None:
    assert [summary.past_tense(v) for v in ("evict", "create", "unpatch")] == [
        "evicted", "created", "unpatched"]


# --- the time the writes take at the rate limit --------------------------------------------------


@pytest.mark.parametrize(
    ("writes", "qps", "burst", "seconds"),
    [
        (0, 20, 40, 0.0),
        (40, 20, 40, 0.0),        # the burst goes at once
        (41, 20, 40, 0.05),       # then 1/qps each
        (100, 20, 40, 3.0),
        (4000, 20, 40, 198.0),    # the 2 000 namespaces: over three minutes
        (20000, 20, 40, 998.0),   # 10 000 namespaces: about seventeen minutes
        (10, 0.5, 1, 18.0),
    ],
)
def test_write_time_is_burst_tokens_first_then_one_per_qps(writes: int, qps: float, burst: int,
                                                           seconds: float) -> None:
    assert progress.write_seconds(writes, qps=qps, burst=burst) == pytest.approx(seconds)


def test_write_time_refuses_a_rate_of_zero() -> None:
    with pytest.raises(ValueError, match="qps"):
        progress.write_seconds(10, qps=0, burst=1)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.2, "1s"), (3.0, "3s"), (59.5, "1m00s"), (141.4, "2m22s"), (198, "3m18s"),
     (3600, "1h00m"), (3725, "1h03m")],
)
def test_durations_read_like_a_clock_and_never_promise_too_little(seconds: float,
                                                                  text: str) -> None:
    assert progress.format_duration(seconds) == text


def test_plan_summary_counts_each_kind_and_says_how_long_the_writes_take() -> None:
    actions: list[plan.Action] = [
        *creates(50),
        *[plan.PatchServiceAccount(f"ns-{i:03d}", "default", "1", add=("regcred",))
          for i in range(50)],
        plan.ReplaceSecret(content(), "1", "type", observed_uid="uid"),  # a delete and a create
        plan.DeleteSecret(NS, "old", "1"),
    ]
    line = summary.plan_summary(actions, conflicts=0, blocked=0, qps=20, burst=40)
    assert line == ("plan: 102 actions (50 create secret, 1 replace secret, "
                    "50 patch serviceaccount, 1 delete secret), 103 writes, about 4s at "
                    "--kube-qps 20 --kube-burst 40")


def test_plan_summary_of_nothing_names_conflicts_and_blocked_secrets() -> None:
    assert summary.plan_summary([], conflicts=0, blocked=0, qps=20, burst=40) == (
        "plan: nothing to write")
    assert summary.plan_summary([], conflicts=1, blocked=3, qps=2.5, burst=1) == (
        "plan: nothing to write; 1 conflict, 3 blocked")
    one = summary.plan_summary(creates(1), conflicts=2, blocked=0, qps=2.5, burst=1)
    assert one == ("plan: 1 action (1 create secret), 1 write, about 0s at --kube-qps 2.5 "
                   "--kube-burst 1; 2 conflicts")


# --- time left during a pass ------------------------------------------------------------------


def test_time_left_comes_from_the_rate_limit_while_the_burst_is_spent() -> None:
    clock = fakes.FakeClock()
    tracker = progress.Tracker(100, qps=20, burst=40, clock=clock)
    first = tracker.snapshot()
    assert (first.done, first.rate, first.left) == (0, None, pytest.approx(3.0))
    clock.advance(0.1)
    tracker.advance(40)  # the burst: 40 writes in 0.1 s
    snap = tracker.snapshot()
    # 2 tokens came back in 0.1 s; the other 58 writes wait 1/20 s each
    assert (snap.done, snap.rate, snap.left) == (40, None, pytest.approx(2.9))


def test_time_left_follows_the_rate_seen_when_the_apiserver_is_slower_than_the_limit() -> None:
    clock = fakes.FakeClock()
    tracker = progress.Tracker(4000, qps=20, burst=40, clock=clock)
    for _ in range(600):  # 5 writes a second for two minutes
        clock.advance(0.2)
        tracker.advance()
    snap = tracker.snapshot()
    assert snap.done == 600
    assert snap.rate == pytest.approx(5.0)
    assert snap.left == pytest.approx(3400 / 5.0)
    assert snap.line("sync") == "sync: 600/4000 writes, 5.0/s, about 11m20s left"


def test_a_stalled_pass_says_it_does_not_know_the_time_left() -> None:
    clock = fakes.FakeClock()
    tracker = progress.Tracker(100, qps=20, burst=40, clock=clock)
    clock.advance(1)
    tracker.advance(10)
    clock.advance(progress.RATE_WINDOW + 1)
    assert tracker.snapshot().line("uninstall") == (
        "uninstall: 10/100 writes, 0.0/s, time left unknown")


def test_a_finished_pass_has_nothing_left() -> None:
    clock = fakes.FakeClock()
    tracker = progress.Tracker(3, qps=1, burst=1, clock=clock)
    for _ in range(3):
        clock.advance(1)
        tracker.advance()
    assert tracker.snapshot().left == 0


def test_the_throttle_says_yes_at_most_once_per_interval_and_not_at_the_start() -> None:
    clock = fakes.FakeClock()
    throttle = progress.Throttle(interval=10, clock=clock)
    seen = []
    for _ in range(60):
        clock.advance(0.5)
        seen.append(throttle.due())
    times = [0.5 * (i + 1) for i, yes in enumerate(seen) if yes]
    assert times == [10.0, 20.0, 30.0]


# --- the plain progress line (stdout not a terminal) ----------------------------------------------


def plain_display(clock: fakes.FakeClock, **kw: Any) -> tuple[display.Display, io.StringIO,
                                                                io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    shown = display.Display(command="sync", qps=20, burst=40, out=out, err=err, live=False,
                            clock=clock, tick=None, **kw)
    return shown, out, err


def test_a_pass_that_is_not_on_a_terminal_prints_a_plain_line_at_most_every_10_s() -> None:
    clock = fakes.FakeClock()
    shown, out, err = plain_display(clock)
    actions = creates(100)
    with shown:
        shown.planned(actions)
        for action in actions:
            clock.advance(0.25)  # 4 writes a second: 25 s in all
            shown.applied(action)
    assert out.getvalue().splitlines() == [render.describe_done(a) for a in actions]
    assert err.getvalue().splitlines() == [
        "sync: 40/100 writes, 4.0/s, about 15s left",
        "sync: 80/100 writes, 4.0/s, about 5s left",
    ]


def test_a_stalled_pass_still_prints_its_progress_line_from_the_ticker() -> None:
    clock = fakes.FakeClock()
    shown, _, err = plain_display(clock)
    actions = creates(100)
    with shown:
        shown.planned(actions)
        for action in actions[:30]:
            clock.advance(0.1)
            shown.applied(action)
        for _ in range(40):  # the next write hangs; the ticker keeps looking
            clock.advance(0.5)
            shown.tick()
    assert err.getvalue().splitlines() == [
        "sync: 30/100 writes, 3.0/s, about 24s left",
        "sync: 30/100 writes, 0.0/s, time left unknown",
    ]


def test_a_short_pass_prints_no_progress_line() -> None:
    clock = fakes.FakeClock()
    shown, out, err = plain_display(clock)
    with shown:
        shown.planned(creates(3))
        for action in creates(3):
            clock.advance(0.05)
            shown.applied(action)
        shown.summary("sync: 3 writes, 0 failed", {"writes": 3})
    assert len(out.getvalue().splitlines()) == 3
    assert err.getvalue() == "sync: 3 writes, 0 failed\n"


def test_quiet_prints_only_the_summary() -> None:
    clock = fakes.FakeClock()
    shown, out, err = plain_display(clock, quiet=True)
    with shown:
        shown.planned(creates(100))
        for action in creates(100):
            clock.advance(0.5)
            shown.applied(action)
        shown.summary("sync: 100 writes, 0 failed", {"writes": 100})
    assert out.getvalue() == ""
    assert err.getvalue() == "sync: 100 writes, 0 failed\n"


def test_json_output_is_one_object_per_applied_write_then_the_summary() -> None:
    clock = fakes.FakeClock()
    shown, out, err = plain_display(clock, fmt="json")
    actions = [plan.CreateSecret(content()),
               plan.PatchServiceAccount(NS, "default", "1", add=("regcred",))]
    with shown:
        shown.planned(actions)
        for action in actions:
            shown.applied(action)
        shown.summary("unused in json", {"writes": 2})
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert docs == [
        {"action": "create", "kind": "secret", "namespace": NS, "name": "regcred",
         "credentials": ["dockerhub", "ghcr"], "result": "applied"},
        {"action": "patch", "kind": "serviceaccount", "namespace": NS, "name": "default",
         "credentials": [], "result": "applied"},
        {"summary": "sync", "writes": 2},
    ]
    assert err.getvalue() == ""
    assert fakes.PW not in out.getvalue()


def test_json_output_is_never_drawn_as_a_bar_even_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert display.Display(command="sync", qps=1, burst=1, out=Tty()).live
    assert not display.Display(command="sync", qps=1, burst=1, out=Tty(), fmt="json").live
    assert not display.Display(command="sync", qps=1, burst=1, out=Tty(), quiet=True).live
    assert not display.Display(command="sync", qps=1, burst=1, out=io.StringIO()).live


def test_a_reader_that_went_away_does_not_cut_the_pass_short() -> None:
    class GonePipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    err = io.StringIO()
    shown = display.Display(command="sync", qps=20, burst=40, out=GonePipe(), err=err,
                            live=False, tick=None)
    done = []
    with shown:
        shown.planned(creates(5))
        for action in creates(5):
            shown.applied(action)  # `sync | head -1`: every line fails, the pass goes on
            done.append(action)
        shown.summary("sync: 5 writes, 0 failed", {"writes": 5})
    assert len(done) == 5
    assert err.getvalue() == "sync: 5 writes, 0 failed\n"


# --- the live bar ----------------------------------------------------------------------------


def test_the_live_bar_draws_progress_and_leaves_only_the_lines_behind() -> None:
    out = io.StringIO()
    actions = creates(30)
    with display.Display(command="sync", qps=20, burst=10, out=out, live=True,
                         tick=0.01) as shown:
        shown.planned(actions)
        logging.getLogger("syncer.test").warning("a warning mid-pass")  # goes above the bar
        for action in actions:
            time.sleep(0.005)
            shown.applied(action)
    raw = out.getvalue()
    assert "sync: 0/30 writes" in raw and "sync: 29/30 writes" in raw
    assert screen.render(raw) == [render.describe_done(a) for a in actions]


# --- `run`: the progress log of a long full pass ------------------------------------------------


@pytest.fixture
def slow_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    path = fakes.write_config(tmp_path)
    cfg = fakes.load(path, monkeypatch)
    cluster = fake.FakeCluster()
    for i in range(30):
        cluster.add_namespace(f"team-{i:02d}")
        cluster.put_service_account(f"team-{i:02d}", "default")
    delay = {"write": 0.02}

    def slow_writes(request: fake.Request) -> None:
        if request.verb in ("POST", "PUT", "PATCH", "DELETE"):
            time.sleep(delay["write"])

    cluster.fault = slow_writes
    backend = fakes.FakeBackend(fakes.basic())
    d = daemon.Daemon(settings.RunSettings(config_path=path), cfg, cluster=cluster,
                      backends={"vault": backend}, open_backends=lambda c: {"vault": backend},
                      watch_timeout=5, poll_interval=0.05, progress_interval=0.3)
    yield {"daemon": d, "cluster": cluster, "delay": delay}
    d.shutdown()
    cluster.end_watches()
    for t in d.threads:
        t.join(5)


def progress_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("full pass")]


def test_a_long_full_pass_logs_its_progress_with_done_and_total(
        slow_world: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncer.run")
    d = slow_world["daemon"]
    d.start()
    deadline = time.monotonic() + 20
    while not d.is_ready():
        assert time.monotonic() < deadline, "the first full pass never finished"
        time.sleep(0.02)
    records = progress_records(caplog)
    running = [r for r in records if r.getMessage() == "full pass in progress"]
    assert len(running) >= 2, [r.getMessage() for r in records]  # 60 slow writes: over 1 s
    assert records[-1].getMessage() == "full pass finished"
    docs = [json.loads(observability.JsonFormatter().format(r)) for r in records]
    assert all(doc["total"] == 60 for doc in docs)
    dones = [doc["done"] for doc in docs]
    assert dones == sorted(dones) and 0 < dones[0] < 60 and dones[-1] == 60
    assert all(doc["level"] == "info" and isinstance(doc["left_seconds"], int) for doc in docs)

    # a pass over a few namespaces is not a full pass: no progress lines, however slow
    time.sleep(0.5)  # the second credential's first read queued one more (idle) full pass
    caplog.clear()
    slow_world["delay"]["write"] = 0.25
    slow_world["cluster"].add_namespace("team-late")
    slow_world["cluster"].put_service_account("team-late", "default")
    deadline = time.monotonic() + 20
    while slow_world["cluster"].stored("secrets", "team-late", "regcred") is None or (
            "regcred" not in slow_world["cluster"].stored(
                "serviceaccounts", "team-late", "default").image_pull_secrets):
        assert time.monotonic() < deadline, "the new namespace was never synced"
        time.sleep(0.02)
    d.housekeep_once()
    assert progress_records(caplog) == []


def test_a_long_full_pass_cut_short_by_shutdown_says_it_stopped(
        slow_world: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="syncer.run")
    d = slow_world["daemon"]
    d.start()
    deadline = time.monotonic() + 20
    while not any(r.getMessage() == "full pass in progress" for r in caplog.records):
        assert time.monotonic() < deadline, "no progress line"
        time.sleep(0.01)
    d.stop.set()  # shutting down: the rest of the pass is left for later
    deadline = time.monotonic() + 20
    while not any(r.getMessage().startswith("full pass s") for r in caplog.records):
        assert time.monotonic() < deadline, "the pass never said how it ended"
        time.sleep(0.01)
    last = progress_records(caplog)[-1]
    assert last.getMessage() == "full pass stopped"
    assert last.__dict__["done"] < last.__dict__["total"] == 60
    assert not d.is_ready()
