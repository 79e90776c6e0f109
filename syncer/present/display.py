"""What `sync` and `uninstall` show while they run: one line per applied write on stdout (text, or
JSON lines with `--output json`) and the progress of the pass — a live bar when stdout is a
terminal, else a plain line on stderr at most every 10 s (CI logs). Names only, never a value:
every line is made by `syncer.present.actions`.

The live bar is tqdm's, drawn on stdout: lines are written above it (`tqdm.write`), log records
are routed above it too, and it is erased when the pass ends, so the terminal keeps only the
per-write lines and the summary. Only this module imports tqdm.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TextIO

import tqdm
import tqdm.contrib.logging

from syncer.decide import plan, progress, recycle
from syncer.present import actions as render
from syncer.reconcile import evict

TICK_SECONDS = 0.5  # how often the bar (or the plain line's clock) is looked at between writes
BAR_FORMAT = "{desc} |{bar:24}|"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class _Bar:
    """The live display: `sync: 42/100 writes, 19.8/s, about 3s left |█████▏     |`."""

    def __init__(self, *, first: progress.Snapshot, command: str, out: TextIO) -> None:
        self._out = out
        self._stack = contextlib.ExitStack()
        with self._stack as undo:  # kept open unless the bar cannot be made
            undo.enter_context(tqdm.contrib.logging.logging_redirect_tqdm())
            self._bar = tqdm.tqdm(total=first.total, desc=first.line(command), file=out,
                                  leave=False, bar_format=BAR_FORMAT, dynamic_ncols=True,
                                  mininterval=0.1, disable=False)
            self._stack = undo.pop_all()

    def show(self, snapshot: progress.Snapshot, command: str) -> None:
        self._bar.set_description_str(snapshot.line(command), refresh=False)
        self._bar.n = min(snapshot.done, snapshot.total)
        self._bar.refresh()

    def write(self, line: str) -> None:
        tqdm.tqdm.write(line, file=self._out)

    def close(self) -> None:
        try:
            self._bar.close()  # leave=False: the bar's line is erased
        finally:
            self._stack.close()


class Display:
    """Per-write lines and progress for one command; use as a context manager so that the bar
    is erased and the ticker stopped whatever happens (Ctrl-C included).

    `live` (default: text output, not quiet, stdout a terminal) chooses the bar over the plain
    progress line. `tick=None` starts no ticker thread: a test calls `tick()` itself.
    """

    def __init__(self, *, command: str, qps: float, burst: int, fmt: str = "text",
                 quiet: bool = False, out: TextIO | None = None, err: TextIO | None = None,
                 live: bool | None = None, clock: Callable[[], float] = time.monotonic,
                 tick: float | None = TICK_SECONDS,
                 interval: float = progress.INTERVAL) -> None:
        self.command = command
        self.json = fmt == "json"
        self.quiet = quiet
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._qps, self._burst = qps, burst
        self._clock = clock
        self._tick = tick
        self._interval = interval
        self.live = (not self.json and not quiet and is_terminal(self._out)
                     if live is None else live)
        self._progress: progress.Periodic | None = None
        self._bar: _Bar | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._out_gone = False

    # ---- the pass ----------------------------------------------------------------------
    def planned(self, actions: Sequence[plan.Action]) -> None:
        """The writes about to be made: starts the progress display (nothing if none)."""
        total = progress.total_writes(actions)
        if self.quiet or total == 0:
            return
        self._progress = progress.Periodic(total, qps=self._qps, burst=self._burst,
                                           clock=self._clock, interval=self._interval)
        if self.live:
            self._bar = _Bar(first=self._progress.tracker.snapshot(), command=self.command,
                             out=self._out)
        if self._tick is not None:
            self._ticker = threading.Thread(target=self._tick_loop, name="progress",
                                            daemon=True)
            self._ticker.start()

    def applied(self, action: plan.Action | recycle.EvictPod) -> None:
        """One write done: its line, then the progress."""
        self._line(render.describe_done(action), action, result="applied")
        if self._progress is not None:
            self._progress.advance(progress.writes_of(action))
        self.tick()

    def listed(self, action: plan.Action) -> None:
        """One write that a dry run would make (present tense, as `plan` prints it)."""
        self._line(render.describe(action), action, result="planned")

    def tick(self) -> None:
        """Refresh the bar, or print the plain progress line if one is due."""
        with self._lock:
            if self._progress is None:
                return
            if self._bar is not None:
                self._bar.show(self._progress.tracker.snapshot(), self.command)
            elif (snapshot := self._progress.due()) is not None:
                print(snapshot.line(self.command), file=self._err, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2.0)
            self._ticker = None
        with self._lock:
            bar, self._bar, self._progress = self._bar, None, None
        if bar is not None:
            bar.close()

    def summary(self, text: str, doc: Mapping[str, object]) -> None:
        """The last word: `text` on stderr, or (JSON) `doc` as the final object on stdout."""
        if self.json:
            self._print_out(json.dumps({"summary": self.command, **doc}))
        else:
            print(text, file=self._err, flush=True)

    def __enter__(self) -> Display:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- helpers -------------------------------------------------------------------------
    def _line(self, text: str, action: plan.Action | recycle.EvictPod, *, result: str) -> None:
        if self.quiet:
            return
        line = json.dumps({**render.as_json(action), "result": result}) if self.json else text
        with self._lock:
            if self._bar is not None:
                self._bar.write(line)
            else:
                self._print_out(line)

    def _print_out(self, line: str) -> None:
        """A line on stdout, flushed (CI logs see it at once). When the reader has gone
        (`sync | head -1`) the pass goes on: cutting it short would help nobody."""
        if self._out_gone:
            return
        try:
            print(line, file=self._out, flush=True)
        except BrokenPipeError:
            self._out_gone = True
            with contextlib.suppress(AttributeError, OSError, ValueError):
                # and the interpreter's own flush at exit must not fail on it either
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._out.fileno())
                os.close(devnull)

    def _tick_loop(self) -> None:
        if self._tick is None:
            return
        while not self._stop.wait(self._tick):
            self.tick()


def report_recycling(out: evict.Outcome, *, dry_run: bool) -> None:
    """`recyclePods` after a pass (docs/operations.md): its errors, and for `sync` what it did."""
    if out.forbidden is not None:
        print(f"error: recyclePods: not allowed to read or evict pods ({out.forbidden}); add the "
              "recycle-pods RBAC component", file=sys.stderr)
    for failure in out.failures:
        print(f"error: {failure}", file=sys.stderr)
    if not dry_run and (out.evicted or out.refused or out.deferred or out.warned):
        print(f"recycle: {len(out.evicted)} pods evicted, {len(out.refused)} refused by a "
              f"disruption budget, {len(out.deferred)} left for later (rate limit), "
              f"{len(out.warned)} not evictable (Warning Event)", file=sys.stderr)
