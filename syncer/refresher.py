"""Per-credential refresh: one backend read per credential per refreshInterval.

Keeps the last good value of every credential. A failing read keeps that value, marks the
credential unhealthy and retries with exponential backoff and jitter, capped at the interval.
A read whose content differs from the last good one reports the credential as changed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from backends import base
from syncer import config, credentials, dockerconfig, observability

log = logging.getLogger(__name__)

INITIAL_BACKOFF = 1.0


@dataclass(slots=True)
class _State:
    spec: config.CredentialSpec
    value: dockerconfig.Auths | None = field(default=None, repr=False)
    next_due: float = 0.0
    failures: int = 0
    attempted: bool = False


def backoff(failures: int, interval: float, *, rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number `failures` (1, 2, …): 1 s, 2 s, 4 s … with ±25 % jitter,
    never more than the refresh interval."""
    base_delay: float = INITIAL_BACKOFF * 2.0 ** min(failures - 1, 20)
    return min(interval, base_delay * (0.75 + 0.5 * rand()))


class Refresher:
    """Reads due credentials on its own thread and calls `on_change(names)` on new content."""

    def __init__(self, *, metrics: observability.Metrics,
                 on_change: Callable[[set[str]], None], stop: threading.Event,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._metrics = metrics
        self._on_change = on_change
        self._stop = stop
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._states: dict[str, _State] = {}
        self._backends: Mapping[str, base.Backend] = {}
        self._active = threading.Event()
        self.thread = threading.Thread(target=self._run, name="refresh", daemon=True)

    def configure(self, cfg: config.Config, backends: Mapping[str, base.Backend]) -> None:
        """Adopt a (new) config: unchanged credentials keep their value and schedule."""
        used = {c for m in cfg.mappings for c in m.credentials}
        with self._lock:
            states: dict[str, _State] = {}
            for name in sorted(used):
                spec = cfg.credentials[name]
                old = self._states.get(name)
                if old is not None and old.spec == spec:
                    states[name] = old
                else:
                    states[name] = _State(spec=spec, next_due=self._clock())
            self._states = states
            self._backends = backends
        self._wake.set()

    def values(self) -> dict[str, dockerconfig.Auths]:
        with self._lock:
            return {n: s.value for n, s in self._states.items() if s.value is not None}

    def settled(self) -> bool:
        """Whether every credential has been tried at least once since start."""
        with self._lock:
            return all(s.attempted for s in self._states.values())

    def refresh_all(self) -> None:
        """Read every credential now (SIGHUP, becoming leader)."""
        with self._lock:
            now = self._clock()
            for state in self._states.values():
                state.next_due = now
        self._wake.set()

    def set_active(self, active: bool) -> None:
        """Only the leader reads backends; a standby replica keeps quiet."""
        if active:
            self._active.set()
            self.refresh_all()
        else:
            self._active.clear()

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._active.is_set():
                self._wake.clear()
                self._wake.wait(1.0)
                continue
            now = self._clock()
            with self._lock:
                due = [(n, s) for n, s in self._states.items() if s.next_due <= now]
                upcoming = min((s.next_due for s in self._states.values()), default=now + 60)
            if not due:
                self._wake.clear()
                self._wake.wait(max(0.0, min(upcoming - now, 60.0)))
                continue
            changed = {name for name, state in due if self._refresh(name, state)}
            if changed:
                self._on_change(changed)

    def _refresh(self, name: str, state: _State) -> bool:
        spec = state.spec
        backend = self._backends.get(spec.backend)
        if backend is None:
            return False
        try:
            value = credentials.read(spec, backend)
        except credentials.CredentialError as exc:
            with self._lock:
                state.attempted = True
                state.failures += 1
                delay = backoff(state.failures, spec.refresh_interval)
                state.next_due = self._clock() + delay
            self._metrics.credential_fetch.labels(credential=name, result="error").inc()
            self._metrics.credential_up.labels(credential=name).set(0)
            log.error("credential read failed; keeping the last good value", extra={
                "credential": name, "error": str(exc), "retry_in": round(delay, 2)})
            return False
        with self._lock:
            changed = value != state.value
            state.attempted = True
            state.value = value
            state.failures = 0
            state.next_due = self._clock() + spec.refresh_interval
        now = self._wall()
        self._metrics.credential_fetch.labels(credential=name, result="success").inc()
        self._metrics.credential_up.labels(credential=name).set(1)
        self._metrics.credential_last_success.labels(credential=name).set(now)
        if changed:
            self._metrics.credential_last_change.labels(credential=name).set(now)
            log.info("credential content changed", extra={"credential": name})
        return changed
