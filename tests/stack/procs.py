"""Start, watch and stop the server processes of the test stack.

Every process runs in its own process group, logs to its own file, and is registered so that it
is stopped at session end, at interpreter exit and on SIGTERM — only the groups we started.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class StackUnavailableError(RuntimeError):
    """A server of the stack could not be obtained or did not become ready."""

    def __init__(self, message: str, *, logs: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.logs = dict(logs or {})

    def report(self) -> str:
        parts = [str(self)]
        for name, text in self.logs.items():
            parts.append(f"----- {name} (tail) -----\n{text}")
        return "\n".join(parts)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, *, lines: int = 60) -> str:
    """The last `lines` lines of a log file ('' if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


@dataclass(slots=True)
class Proc:
    """One started server process (its own process group) and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, *, lines: int = 60) -> str:
        return tail(self.log_path, lines=lines)

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`, reap the leader."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.popen.poll() is None:
                _signal_group(self.popen.pid, signal.SIGTERM)
                try:
                    self.popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.popen.pid, signal.SIGKILL)
                    self.popen.wait(timeout=5)
            # Children that outlived the leader are still in its group.
            _signal_group(self.popen.pid, signal.SIGKILL)
        finally:
            _REGISTRY.discard(self)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Registry:
    """Processes started by this interpreter and not yet stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: list[Proc] = []

    def add(self, proc: Proc) -> None:
        with self._lock:
            self._procs.append(proc)

    def discard(self, proc: Proc) -> None:
        with self._lock:
            if proc in self._procs:
                self._procs.remove(proc)

    def stop_all(self) -> None:
        with self._lock:
            procs = list(reversed(self._procs))
        for proc in procs:
            proc.stop(timeout=5)


_REGISTRY = _Registry()
atexit.register(_REGISTRY.stop_all)


def stop_all() -> None:
    """Stop every process this interpreter started and has not stopped yet."""
    _REGISTRY.stop_all()


def install_sigterm_handler(*, then: Callable[[int], None] | None = None) -> None:
    """On SIGTERM, stop our servers, then call `then(signum)` (default: exit with 143)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        _REGISTRY.stop_all()
        if then is not None:
            then(signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start `argv` in a new process group with stdout+stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # If pytest is killed hard, the kernel kills the server too (only reliable when the
    # starting thread lives as long as the process, i.e. the main thread).
    preexec = _die_with_parent if threading.current_thread() is threading.main_thread() else None
    with log_path.open("ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            raise StackUnavailableError(f"{name}: cannot start {argv[0]}: {exc}") from exc
    proc = Proc(name=name, popen=popen, log_path=log_path)
    _REGISTRY.add(proc)
    return proc


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    timeout: float,
    procs: Sequence[Proc] = (),
    interval: float = 0.1,
) -> None:
    """Poll `check` until true; fail early if one of `procs` exits, late after `timeout`."""
    deadline = time.monotonic() + timeout
    stop = threading.Event()
    last_exc: Exception | None = None
    while True:
        for proc in procs:
            if not proc.alive():
                raise StackUnavailableError(
                    f"{proc.name} exited with status {proc.popen.returncode} while waiting for "
                    f"{what}; log: {proc.log_path}",
                    logs={p.name: p.tail() for p in procs},
                )
        try:
            if check():
                return
            last_exc = None
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise StackUnavailableError(
                f"timed out after {timeout:.0f}s waiting for {what}{detail}",
                logs={p.name: p.tail() for p in procs},
            )
        stop.wait(interval)
