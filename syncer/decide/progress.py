"""Progress of a run of writes: the writes each action costs, the time they take at the
client-side rate limit, and when a progress line is due (the daemon's log lines and `sync`'s bar
share it; their wording is `syncer.present`'s). Pure: the clock is a parameter and nothing here
prints or logs.

The rate limit is a token bucket (`syncer.kube.ratelimit`): `burst` writes go at once, then one
every `1/qps` seconds. That gives both the plan's estimate and, during a pass, the time left;
when the apiserver is slower than the limit, the rate actually seen over the last seconds wins.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from syncer.decide import plan

INTERVAL = 10.0  # seconds between two plain progress lines (CI logs, `run`)
RATE_WINDOW = 10.0  # the rate shown is the one over the last this many seconds


def writes_of(action: plan.BaseAction) -> int:
    """API writes an action costs against the rate limit: a replace is a delete and a create."""
    return action.writes


def total_writes(actions: Iterable[plan.BaseAction]) -> int:
    return sum(writes_of(a) for a in actions)


def write_seconds(writes: int, *, qps: float, burst: int) -> float:
    """How long `writes` take at the rate limit from a full bucket: the first `burst` at once,
    then one per `1/qps` seconds (latency of the apiserver not included)."""
    if qps <= 0 or burst < 0:
        raise ValueError("qps must be > 0 and burst >= 0")
    return max(0, writes - burst) / qps


def format_duration(seconds: float) -> str:
    """`0s`, `45s`, `2m21s`, `1h05m`: whole seconds, rounded up (never promises too little)."""
    whole = max(0, math.ceil(seconds - 1e-9))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(math.ceil(whole / 60), 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a pass stands: writes done of `total`, the recent rate (None: too early to say),
    and the seconds left (None: nothing moved for a whole rate window)."""

    done: int
    total: int
    rate: float | None
    left: float | None
    elapsed: float

    def line(self, command: str) -> str:
        """`sync: 1200/4000 writes, 19.8/s, about 2m21s left`."""
        rate = "-" if self.rate is None else f"{self.rate:.1f}"
        left = "time left unknown" if self.left is None else (
            f"about {format_duration(self.left)} left")
        return f"{command}: {self.done}/{self.total} writes, {rate}/s, {left}"


class Tracker:
    """Counts the writes of one pass against the rate limit; thread-safe."""

    def __init__(self, total: int, *, qps: float, burst: int,
                 clock: Callable[[], float]) -> None:
        self.total = total
        self._qps = qps
        self._burst = burst
        self._clock = clock
        self._start = clock()
        self._done = 0
        self._samples: deque[tuple[float, int]] = deque([(self._start, 0)])
        self._lock = threading.Lock()

    def advance(self, writes: int = 1) -> None:
        with self._lock:
            self._done += writes
            self._samples.append((self._clock(), self._done))

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            done = self._done
            # keep the newest sample older than the window as the baseline of the rate
            while len(self._samples) > 1 and self._samples[1][0] <= now - RATE_WINDOW:
                self._samples.popleft()
            base_t, base_done = self._samples[0]
        elapsed = now - self._start
        remaining = max(0, self.total - done)
        # tokens left in the bucket if only this pass drew from it
        tokens = min(float(self._burst), self._burst + elapsed * self._qps - done)
        at_limit = max(0.0, remaining - max(0.0, tokens)) / self._qps
        if now - base_t < 1.0:  # too early for a rate: the limit is the best guess
            return Snapshot(done, self.total, None, at_limit, elapsed)
        rate = (done - base_done) / (now - base_t)
        if remaining == 0:
            return Snapshot(done, self.total, rate, 0.0, elapsed)
        if rate <= 0:
            return Snapshot(done, self.total, rate, None, elapsed)
        return Snapshot(done, self.total, rate, max(at_limit, remaining / rate), elapsed)


class Throttle:
    """Yes at most once per `interval`, the first time `interval` after the start, so a short
    pass says nothing. Thread-safe."""

    def __init__(self, *, interval: float = INTERVAL, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._next = clock() + interval
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = self._clock()
            if now < self._next:
                return False
            self._next = now + self._interval
            return True


class Periodic:
    """A `Tracker` whose snapshot is handed out at most once per `interval` (`due`), for the
    plain progress line of `sync` and the log line of `run`."""

    def __init__(self, total: int, *, qps: float, burst: int, clock: Callable[[], float],
                 interval: float = INTERVAL) -> None:
        self.tracker = Tracker(total, qps=qps, burst=burst, clock=clock)
        self._throttle = Throttle(interval=interval, clock=clock)
        self.reported = False  # whether any snapshot was handed out

    def advance(self, writes: int = 1) -> None:
        self.tracker.advance(writes)

    def due(self) -> Snapshot | None:
        if not self._throttle.due():
            return None
        self.reported = True
        return self.tracker.snapshot()
