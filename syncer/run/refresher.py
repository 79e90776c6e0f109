"""Per-credential refresh: one backend read per credential per refreshInterval.

Keeps the last good value of every credential. A failing read keeps that value, marks the
credential unhealthy and retries with exponential backoff and jitter, capped at the interval.
A read whose content differs from the last good one reports the credential as changed.

`step()` does what is due now and says how long to wait; `run()` is that in a loop. Tests call
`step()` with a fake clock.
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

log = logging.getLogger("syncer.run")

INITIAL_BACKOFF = 1.0
IDLE_WAIT = 60.0

Reader = Callable[[config.CredentialSpec, base.Backend], dockerconfig.Auths]


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
    """Reads due credentials and calls `on_change(names)` on new content."""

    def __init__(self, *, metrics: observability.Metrics,
                 on_change: Callable[[set[str]], None], stop: threading.Event,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 read: Reader = credentials.read) -> None:
        self._metrics = metrics
        self._on_change = on_change
        self._stop = stop
        self._clock = clock
        self._wall = wall
        self._rand = rand
        self._read = read
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._states: dict[str, _State] = {}
        self._backends: Mapping[str, base.Backend] = {}
        self._active = threading.Event()

    def configure(self, cfg: config.Config, backends: Mapping[str, base.Backend]) -> None:
        """Adopt a (new) config: unchanged credentials keep their value and schedule."""
        with self._lock:
            states: dict[str, _State] = {}
            for name in sorted(credentials.used(cfg)):
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

    def run(self) -> None:
        while not self._stop.is_set():
            if not self._active.is_set():
                self._wake.clear()
                self._wake.wait(1.0)
                continue
            wait = self.step()
            self._wake.clear()
            if wait > 0:  # at most a second at a time: shutdown must not wait for a refresh
                self._wake.wait(min(wait, 1.0))

    def step(self) -> float:
        """Read every credential that is due; seconds until the next one is due."""
        now = self._clock()
        with self._lock:
            due = [(n, s) for n, s in self._states.items() if s.next_due <= now]
        changed = {name for name, state in due if self._refresh(name, state)}
        if changed:
            self._on_change(changed)
        with self._lock:
            upcoming = min((s.next_due for s in self._states.values()), default=now + IDLE_WAIT)
        return max(0.0, min(upcoming - self._clock(), IDLE_WAIT))

    def _refresh(self, name: str, state: _State) -> bool:
        spec = state.spec
        backend = self._backends.get(spec.backend)
        if backend is None:
            return False
        try:
            value = self._read(spec, backend)
        except credentials.CredentialError as exc:
            with self._lock:
                state.attempted = True
                state.failures += 1
                delay = backoff(state.failures, spec.refresh_interval, rand=self._rand)
                state.next_due = self._clock() + delay
            self._metrics.credential_read(name, ok=False, now=self._wall())
            log.error("credential read failed; keeping the last good value", extra={
                "credential": name, "error": str(exc), "retry_in": round(delay, 2)})
            return False
        with self._lock:
            changed = value != state.value
            state.attempted = True
            state.value = value
            state.failures = 0
            state.next_due = self._clock() + spec.refresh_interval
        self._metrics.credential_read(name, ok=True, now=self._wall(), changed=changed)
        if changed:
            log.info("credential content changed", extra={"credential": name})
        return changed
