"""What a user sees while `sync`, `uninstall`, `plan` and `run` work, on the real stack: the real
CLI through a pipe (as in CI logs) and through a pseudo-terminal (as at a desk). Each write is
printed as it is applied, in plan's order and vocabulary; `--quiet` leaves the summary; `--output
json` is JSON lines; a terminal gets a live bar that leaves nothing behind; a pipe gets a plain
progress line every 10 s; `run` logs a long full pass's progress. Everything printed feeds the
session's leak registry."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syncer.decide import progress
from syncer.present import summary
from tests import screen
from tests.integration.conftest import (
    REPO,
    LeakRegistry,
    Result,
    assert_no_leak,
    wait_for_sa,
)
from tests.integration.daemonproc import wait_until
from tests.integration.test_sync import config_text, seeded  # noqa: F401 - a fixture
from tests.stack import product

N = 50  # namespaces: 50 Secret creates + 50 ServiceAccount patches
PROGRESS_LINE = re.compile(r"^sync: (\d+)/(\d+) writes, \d+\.\d/s, (about \S+ left|time left "
                           r"unknown)$")
SUMMARY = "sync: {n} writes, 0 failed, 0 conflicts, 0 blocked, 0 credentials failing"


def past(plan_lines: list[str]) -> list[str]:
    """What sync prints for what plan printed: the same lines, the verb in the past tense."""
    out = []
    for line in plan_lines:
        verb, rest = line.split(" ", 1)
        out.append(f"{summary.past_tense(verb)} {rest}")
    return out


@pytest.fixture
def namespaces(namespace_factory: Callable[..., str], core: Any,
               unique: str) -> Callable[[int, str], list[str]]:
    """`make(n, group) -> names`: n namespaces labelled for one mapping, `default` SA present."""

    def make(n: int, group: str) -> list[str]:
        names = [namespace_factory(prefix=group, labels={"pss-out": f"{unique}-{group}"})
                 for _ in range(n)]
        for ns in names:
            wait_for_sa(core, ns)
        return names

    return make


@pytest.fixture
def mapping_config(write_config: Callable[[str], Path], vault: Any, aws: Any, unique: str,
                   seeded: dict[str, str]) -> Callable[[str], Path]:  # noqa: F811
    """`make(group) -> config path` of one mapping over the namespaces of `group`."""

    def make(group: str) -> Path:
        return write_config(config_text(vault, aws, unique, f"""
  - name: {group}
    namespaces: {{selector: {{matchLabels: {{pss-out: "{unique}-{group}"}}}}}}
    credentials: [hub, ghcr]
"""))

    return make


@dataclass
class Streamed:
    code: int
    lines: list[tuple[float, str]]  # (seconds since start, stdout line) as they arrived
    stderr: str
    ended: float

    @property
    def stdout_lines(self) -> list[str]:
        return [line for _, line in self.lines]


def _record(request: pytest.FixtureRequest, leak_registry: LeakRegistry,
            leak_values: list[str], what: str, text: str) -> None:
    """What the `cli` fixture does with every output: feed the registry, check it at once."""
    leak_registry.text(f"{request.node.nodeid}: {what}", text)
    assert "Traceback" not in text, text
    assert_no_leak(text, leak_values)


@pytest.fixture
def cli_streamed(request: pytest.FixtureRequest, stack_env: dict[str, str],
                 leak_registry: LeakRegistry,
                 leak_values: list[str]) -> Callable[..., Streamed]:
    """Runs the CLI with stdout and stderr on pipes and notes when each stdout line arrives."""

    def run(*args: str, timeout: float = 180) -> Streamed:
        began = time.monotonic()
        proc = subprocess.Popen(product.installed().argv(*args), env=stack_env,
                                cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()  # type: ignore[union-attr]
                                                            ), daemon=True)
        reader.start()
        lines = [(time.monotonic() - began, line.rstrip("\n"))
                 for line in proc.stdout]  # type: ignore[union-attr]
        code = proc.wait(timeout=timeout)
        ended = time.monotonic() - began
        reader.join(timeout)
        result = Streamed(code, lines, "".join(err), ended)
        _record(request, leak_registry, leak_values, f"cli {args[0]} (streamed)",
                "\n".join(result.stdout_lines) + result.stderr)
        return result

    return run


@pytest.fixture
def cli_pty(request: pytest.FixtureRequest, stack_env: dict[str, str],
            leak_registry: LeakRegistry, leak_values: list[str]) -> Callable[..., Result]:
    """`cli` on a pseudo-terminal: stdout and stderr are one 160x50 terminal; returns the raw
    bytes the terminal received (decoded) as `stdout`."""

    def run(*args: str, timeout: float = 180) -> Result:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        proc = subprocess.Popen(product.installed().argv(*args),
                                env={**stack_env, "TERM": "xterm-256color"}, cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                close_fds=True)
        os.close(slave)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert time.monotonic() < deadline, "the command did not finish in time"
                ready, _, _ = select.select([master], [], [], 0.5)
                if not ready:
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)
        raw = b"".join(chunks).decode("utf-8", "replace")
        _record(request, leak_registry, leak_values, f"cli {args[0]} (pty)", raw)
        return Result(code, raw, "")

    return run


def test_sync_prints_each_write_as_it_is_applied_in_plan_order_with_plain_progress_lines(
    cli: Callable[..., Result], cli_streamed: Callable[..., Streamed],
    namespaces: Callable[[int, str], list[str]], mapping_config: Callable[[str], Path],
) -> None:
    made = namespaces(N, "pipe")
    cfg = mapping_config("pipe")
    limit = ("--kube-qps", "5")  # 40 writes at once, then 60 at 5/s: 12 s of progress
    planned = cli("plan", "--config", str(cfg), *limit)
    assert planned.code == 0, planned.output
    plan_lines = planned.stdout.splitlines()
    assert len(plan_lines) == 2 * N
    assert {line.split()[2].split("/")[0] for line in plan_lines} == set(made)
    assert planned.stderr.splitlines()[-1] == (
        "plan: 100 actions (50 create secret, 50 patch serviceaccount), 100 writes, about 12s "
        "at --kube-qps 5 --kube-burst 40")

    synced = cli_streamed("sync", "--config", str(cfg), *limit)
    assert synced.code == 0, synced.stderr
    assert synced.stdout_lines == past(plan_lines)
    # printed while it happens: the burst's lines long before the end of the run
    first_at = synced.lines[0][0]
    assert synced.ended - first_at > 5, (first_at, synced.ended)
    err = synced.stderr.splitlines()
    assert err[-1] == SUMMARY.format(n=2 * N)
    progress_lines = [line for line in err if PROGRESS_LINE.match(line)]
    # one line per 10 s of pass: the rate limit makes it last > 10 s; a slow machine may
    # stretch it, so the upper bound follows the measured run, not a fixed count
    assert 1 <= len(progress_lines) <= max(2, int(synced.ended // progress.INTERVAL)), err
    assert all(int(PROGRESS_LINE.match(line).group(2)) == 2 * N  # type: ignore[union-attr]
               for line in progress_lines)
    # only the summary and the progress lines: the stdout lines are not logged a second time
    assert err == [*progress_lines, SUMMARY.format(n=2 * N)], err


def test_on_a_terminal_sync_shows_a_live_bar_and_leaves_only_the_lines_and_summary(
    cli: Callable[..., Result], cli_pty: Callable[..., Result],
    namespaces: Callable[[int, str], list[str]], mapping_config: Callable[[str], Path],
) -> None:
    namespaces(N, "tty")
    cfg = mapping_config("tty")
    limit = ("--kube-qps", "10")  # 6 s of bar after the burst
    plan_lines = cli("plan", "--config", str(cfg), *limit).stdout.splitlines()
    assert len(plan_lines) == 2 * N

    shown = cli_pty("sync", "--config", str(cfg), *limit)
    assert shown.code == 0, shown.stdout
    seen = screen.strip_ansi(shown.stdout)
    # the bar was there while the writes went on, counting up to the total
    counts = [int(n) for n in re.findall(r"sync: (\d+)/100 writes, [-\d.]+/s, [^|\r\n]*\|", seen)]
    assert counts and counts == sorted(counts) and counts[-1] >= 90, seen[-2000:]
    assert any(ch in seen for ch in "▏▎▍▌▋▊▉█"), "no bar drawn"
    # ... and the terminal ends up with exactly the per-write lines and the summary
    assert screen.render(shown.stdout) == [*past(plan_lines), SUMMARY.format(n=2 * N)]


def test_quiet_sync_prints_only_the_summary(
    cli: Callable[..., Result], namespaces: Callable[[int, str], list[str]],
    mapping_config: Callable[[str], Path], cli_pty: Callable[..., Result],
) -> None:
    namespaces(5, "quiet")
    cfg = mapping_config("quiet")
    result = cli("sync", "--config", str(cfg), "--quiet")
    assert result.code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == SUMMARY.format(n=10) + "\n"
    again = cli_pty("sync", "--config", str(cfg), "--quiet")  # on a terminal: no bar either
    assert again.code == 0
    assert screen.strip_ansi(again.stdout).replace("\r", "") == SUMMARY.format(n=0) + "\n"


def test_json_output_is_one_object_per_applied_write_in_plan_order_then_the_summary(
    cli: Callable[..., Result], namespaces: Callable[[int, str], list[str]],
    mapping_config: Callable[[str], Path],
) -> None:
    namespaces(5, "json")
    cfg = mapping_config("json")
    planned = cli("plan", "--config", str(cfg), "--output", "json")
    assert planned.code == 0, planned.output
    plan_docs = json.loads(planned.stdout)  # still one JSON list (docs/operations.md)
    assert len(plan_docs) == 10
    assert planned.stderr.splitlines()[-1].startswith("plan: 10 actions (5 create secret, "
                                                      "5 patch serviceaccount), 10 writes")

    synced = cli("sync", "--config", str(cfg), "--output", "json")
    assert synced.code == 0, synced.output
    docs = [json.loads(line) for line in synced.stdout.splitlines()]
    assert docs[:-1] == [{**doc, "result": "applied"} for doc in plan_docs]
    assert docs[-1] == {"summary": "sync", "writes": 10, "failed": 0, "conflicts": 0,
                        "blocked": 0, "credentials_failing": 0,
                        "actions": {"create secret": 5, "patch serviceaccount": 5}}
    assert synced.stderr == ""

    idle = cli("sync", "--config", str(cfg), "--output", "json", "--quiet")
    assert [json.loads(line) for line in idle.stdout.splitlines()] == [
        {"summary": "sync", "writes": 0, "failed": 0, "conflicts": 0, "blocked": 0,
         "credentials_failing": 0, "actions": {}}]


def test_uninstall_prints_each_removal_as_it_is_made_and_json_and_quiet_work_too(
    cli: Callable[..., Result], namespaces: Callable[[int, str], list[str]],
    mapping_config: Callable[[str], Path],
) -> None:
    made = namespaces(3, "unout")
    assert cli("sync", "--config", str(mapping_config("unout"))).code == 0

    dry = cli("uninstall", "--dry-run", "--output", "json")
    assert dry.code == 0, dry.output
    docs = [json.loads(line) for line in dry.stdout.splitlines()]
    mine = [d for d in docs[:-1] if d["namespace"] in made]
    assert mine == [
        *[{"action": "unpatch", "kind": "serviceaccount", "namespace": ns, "name": "default",
           "credentials": [], "result": "planned"} for ns in made],
        *[{"action": "delete", "kind": "secret", "namespace": ns, "name": "regcred",
           "credentials": ["hub", "ghcr"], "result": "planned"} for ns in made],
    ]
    assert docs[-1]["summary"] == "uninstall" and docs[-1]["dry_run"] is True

    removed = cli("uninstall")
    assert removed.code == 0, removed.output
    lines = [line for line in removed.stdout.splitlines() if any(ns in line for ns in made)]
    assert lines == [f"unpatched serviceaccount {ns}/default -regcred" for ns in made] + [
        f"deleted secret {ns}/regcred (hub, ghcr)" for ns in made]
    assert re.fullmatch(r"uninstall: unpatched \d+ serviceaccounts, deleted \d+ secrets, "
                        r"0 failed\n", removed.stderr), removed.stderr

    quiet = cli("uninstall", "--quiet")
    assert quiet.code == 0 and quiet.stdout == ""
    assert re.fullmatch(r"uninstall: unpatched \d+ serviceaccounts, deleted \d+ secrets, "
                        r"0 failed\n", quiet.stderr), quiet.stderr


def test_run_logs_the_progress_of_a_long_full_pass_as_json(
    namespaces: Callable[[int, str], list[str]], mapping_config: Callable[[str], Path],
    start_daemon: Callable[..., Any],
) -> None:
    namespaces(N, "runlog")
    started = time.monotonic()
    proc = start_daemon(mapping_config("runlog"), args=("--kube-qps", "5"))  # ≈ 12 s pass

    def logged() -> list[dict[str, Any]]:
        docs = [json.loads(line) for line in proc.output().splitlines()
                if line.startswith("{")]
        return [d for d in docs if d.get("msg", "").startswith("full pass ")]

    wait_until(lambda: any(d["msg"] == "full pass finished" for d in logged()), timeout=90,
               what="the first full pass to finish")
    elapsed = time.monotonic() - started
    docs = logged()
    running = [d for d in docs if d["msg"] == "full pass in progress"]
    # at most one line per 10 s of pass (bounded by the measured run: a loaded machine is slower)
    assert 1 <= len(running) <= max(2, int(elapsed // progress.INTERVAL)), docs
    assert all(d["level"] == "info" and d["total"] == 2 * N and 0 < d["done"] < 2 * N
               for d in running), running
    assert docs[-1]["done"] == 2 * N


def test_a_sync_whose_stdout_reader_went_away_still_finishes_its_pass(
    request: pytest.FixtureRequest, cli: Callable[..., Result],
    namespaces: Callable[[int, str], list[str]], mapping_config: Callable[[str], Path],
    stack_env: dict[str, str], leak_registry: LeakRegistry, leak_values: list[str],
) -> None:
    namespaces(5, "gone")
    cfg = mapping_config("gone")
    proc = subprocess.Popen(product.installed().argv("sync", "--config", str(cfg)),
                            env=stack_env, cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `sync | head -0`: the reader is gone before the first line
    err = proc.stderr.read()
    code = proc.wait(timeout=120)
    _record(request, leak_registry, leak_values, "cli sync (stdout closed)", err)
    assert code == 0, err
    assert err.splitlines()[-1] == SUMMARY.format(n=10), err
    assert cli("plan", "--config", str(cfg)).stdout == ""  # every write was made
