"""The HTTP endpoint of the real `run` process under a flood of idle and half-sent connections:
`/healthz` keeps answering within a second, and the process's threads and memory stay where
they were (read from /proc, the kernel's view, not from the process itself).

Real parts: the daemon as a subprocess (as `start_daemon` runs it), the real apiserver and
OpenBao behind it; the flood is 1,000 plain TCP connections from this test, half of them with a
request head that never ends.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import daemon_config
from tests.integration.daemonproc import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

FLOOD = 1000


def status(pid: int) -> dict[str, int]:
    """Threads and VmRSS (KiB) of `pid`, from /proc."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def healthz_seconds(daemon: DaemonProcess) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(daemon.url + "/healthz", timeout=5) as resp:  # noqa: S310
        assert resp.status == 200
    return time.monotonic() - started


def test_a_thousand_idle_connections_leave_healthz_answering_and_threads_bounded(
    vault: Any, aws: Any, unique: str, write_config: Callable[[str], Path],
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    daemon = start_daemon(write_config(daemon_config(vault, aws, unique, refresh="1h")))
    daemon.wait_ready()
    time.sleep(2)  # let the loops settle: the baseline is the daemon at rest
    before = status(daemon.proc.pid)

    flood: list[socket.socket] = []
    slowest = 0.0
    try:
        for i in range(FLOOD):
            conn = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
            if i % 2:
                conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
            flood.append(conn)
            if i % 100 == 99:
                slowest = max(slowest, healthz_seconds(daemon))
        during = status(daemon.proc.pid)
        slowest = max(slowest, *(healthz_seconds(daemon) for _ in range(5)))
        print(f"before: {before}; during a flood of {FLOOD}: {during}; "
              f"slowest /healthz {slowest * 1000:.0f} ms")

        assert slowest < 1.0
        assert during["Threads"] <= before["Threads"] + 5  # no thread per connection

        def closed_by_the_daemon() -> int:
            ended = 0
            for conn in flood:
                conn.settimeout(0.001)
                try:
                    ended += conn.recv(1) == b""
                except (ConnectionResetError, BrokenPipeError):
                    ended += 1
                except TimeoutError:
                    pass
            return ended

        started = time.monotonic()
        wait_until(lambda: closed_by_the_daemon() == FLOOD, timeout=25,
                   what="the daemon closing every idle connection")
        print(f"all {FLOOD} connections closed by the daemon "
              f"{time.monotonic() - started:.1f} s after the flood ended")
    finally:
        for conn in flood:
            conn.close()
    after = status(daemon.proc.pid)
    print(f"after: {after}")
    assert after["Threads"] <= before["Threads"] + 2
    assert after["VmRSS"] < before["VmRSS"] + 20 * 1024
    assert daemon.get("/readyz")[0] == 200
