"""Run `pullsecret-syncer run` as a real subprocess for tests, and wait on what it does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.stack import product

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], T], *, timeout: float, interval: float = 0.1,
               what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class DaemonProcess:
    """One `run` process with its own HTTP port and a log file (JSON lines)."""

    def __init__(self, config: Path, env: dict[str, str], log_path: Path, *,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.log_path = log_path
        # The installed console script, as the image runs it (tests/stack/product.py).
        self.args = [str(product.installed().script), "run", "--config", str(config),
                     "--http-addr", f"127.0.0.1:{self.port}", "--log-format", "json",
                     "--log-level", "debug", *extra_args]
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(self.args, env=env, cwd=REPO, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:  # noqa: S310
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(lambda: (self.proc.poll() is None and self.ready()) or self._died(),
                   timeout=timeout, what="daemon /readyz")

    def _died(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
        return False

    def metrics(self) -> dict[str, float]:
        """Prometheus samples as {'name{labels}': value} (our metrics only)."""
        status, text = self.get("/metrics")
        assert status == 200
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("pullsecret_syncer_"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def metric(self, name: str, **labels: str) -> float | None:
        """The sample of pullsecret_syncer_<name> with exactly these labels (None if absent)."""
        wanted = {f'{k}="{v}"' for k, v in labels.items()}
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base == f"pullsecret_syncer_{name}" and set(
                    filter(None, rest.rstrip("}").split(","))) == wanted:
                return value
        return None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, object]]:
        records = []
        for line in self.output().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def terminate(self, timeout: float = 15) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)
            raise

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._log.close()
