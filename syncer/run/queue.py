"""The work queue: namespaces waiting for a pass (`None`: all of them), plus delayed retries.

Duplicates collapse, so a burst of watch events becomes one pass. Retries after a failed pass are
scheduled here rather than on timers, so they obey the same clock and vanish at shutdown.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class WorkQueue:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._full = False
        self._later: list[tuple[float, int, frozenset[str] | None]] = []
        self._seq = itertools.count()
        self._closed = False

    def add(self, namespace: str | None) -> None:
        with self._cond:
            self._add_locked(namespace)
            self._cond.notify()

    def _add_locked(self, namespace: str | None) -> None:
        if namespace is None:
            self._full = True
        else:
            self._pending.add(namespace)

    def add_after(self, delay: float, namespaces: set[str] | None) -> None:
        """Queue `namespaces` (None: a full pass) once `delay` seconds have passed."""
        with self._cond:
            item = None if namespaces is None else frozenset(namespaces)
            heapq.heappush(self._later, (self._clock() + delay, next(self._seq), item))
            self._cond.notify()

    def _promote_due(self) -> float | None:
        """Move due delayed items into the queue (lock held); seconds until the next one."""
        now = self._clock()
        while self._later and self._later[0][0] <= now:
            _, _, item = heapq.heappop(self._later)
            if item is None:
                self._full = True
            else:
                self._pending.update(item)
        return self._later[0][0] - now if self._later else None

    def close(self) -> None:
        """Shutdown: a waiting `take` returns None now, and every later one at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float) -> tuple[bool, set[str]] | None:
        """Wait up to `timeout` for work: (full pass?, namespaces), or None (also once closed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                next_due = self._promote_due()
                if self._full or self._pending:
                    full, pending = self._full, self._pending
                    self._full, self._pending = False, set()
                    return full, pending
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left if next_due is None else min(left, max(next_due, 0.001)))
            return None

    def delayed(self) -> int:
        with self._cond:
            return len(self._later)
