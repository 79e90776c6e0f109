"""Polling helper for tests: wait for a condition the servers reach asynchronously."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(what: str, check: Callable[[], T | None], *, timeout: float = 30.0,
               interval: float = 0.1) -> T:
    """Return the first truthy result of `check()`; AssertionError naming `what` after `timeout`.

    Exceptions from `check` count as "not yet"; the last one is chained to the failure.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    last_exc: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
            last_exc = None
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {timeout:.0f}s: {what}") from last_exc
        pause.wait(interval)
