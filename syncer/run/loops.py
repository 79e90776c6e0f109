"""Supervised loops: a loop's unexpected exception is logged and the loop restarts after a
backoff, so a live process never carries a dead thread (docs/operations.md).

The log names the loop and the exception's type and place, never its message (which may quote
data); the metric `reconcile_errors_total{reason="internal"}` counts it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

from syncer.telemetry import observability

log = logging.getLogger("syncer.run")
MAX_BACKOFF = 30.0


def where(exc: BaseException) -> str:
    """`TypeError at syncer/run/daemon.py:120` — type and innermost frame, no message."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    filename = last.filename.rsplit("/syncer/", 1)[-1]
    return f"{type(exc).__name__} at {filename}:{last.lineno}"


def supervised(name: str, body: Callable[[], None], *, stop: threading.Event,
               metrics: observability.Metrics,
               wait: Callable[[float], bool] | None = None) -> Callable[[], None]:
    """A thread target that runs `body` until `stop` is set, restarting it after a crash."""
    pause = wait or stop.wait

    def run() -> None:
        failures = 0
        while not stop.is_set():
            try:
                body()
                failures = 0
            except Exception as exc:
                failures += 1
                metrics.reconcile_errors.labels(reason="internal").inc()
                log.error("loop failed unexpectedly; restarting it",
                          extra={"object": name, "error": where(exc)})
                if pause(min(MAX_BACKOFF, 0.5 * 2 ** min(failures, 8))):
                    return
            else:
                if not stop.is_set():
                    pause(0.1)  # a body that returns early is simply run again
    return run


def start(name: str, body: Callable[[], None], *, stop: threading.Event,
          metrics: observability.Metrics) -> threading.Thread:
    thread = threading.Thread(target=supervised(name, body, stop=stop, metrics=metrics),
                              name=name, daemon=True)
    thread.start()
    return thread
