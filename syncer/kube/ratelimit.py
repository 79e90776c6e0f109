"""Client-side write rate limit (`--kube-qps`, `--kube-burst`): a token bucket. No I/O.

The clock and the stop event are parameters: a test steps time by hand, and a writer waiting for
a token at shutdown is released at once instead of sleeping past it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 stop: threading.Event | None = None,
                 wait: Callable[[float], bool] | None = None) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self._rate = qps
        self._capacity = float(burst)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._stop = stop or threading.Event()
        self._wait = wait or self._stop.wait

    def acquire(self) -> bool:
        """Take one token, waiting for it; False when stopped while waiting."""
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                delay = (1 - self._tokens) / self._rate
            if self._stop.is_set() or self._wait(delay):
                return False  # shutting down: let the caller finish promptly
