"""Per-credential refresh: each credential is read when its schedule (`syncer.core.renewal`,
given per credential by `schedule`) says — once per refreshInterval, or for a token credential
(aws-ecr) once per renewal.

Keeps the last good value of every credential. A failing read keeps that value, marks the
credential unhealthy and retries after the wait its schedule gives (exponential backoff with
jitter: capped at the interval, or for a token landing before the held one expires).
A read whose content differs from the last good one reports the credential as changed — after
the publish gate (registry verification) let it through; a rejected value is not published and
not checked again while the backend keeps returning it.

The schedule answers every question that differs between the two kinds: when the next read is due,
whether a value just read may be taken, whether the held value may still be handed out (a token
that is expired or in its last minute is not), the wait after a failure, and whether a manual
refresh reads now (a token only without a publishable value). The refresher itself never asks
what kind of credential it holds.

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
from syncer import config
from syncer.core import dockerconfig, renewal
from syncer.credentials import fetch as credentials
from syncer.telemetry import observability

log = logging.getLogger("syncer.run")

IDLE_WAIT = 60.0

Reader = Callable[[config.CredentialSpec, base.Backend], credentials.Fetched]
# The schedule of a credential, chosen once per (new or changed) credential.
Scheduler = Callable[[config.CredentialSpec], renewal.Schedule]
# Whether a new value may be published (e.g. the registries accept it); called once per new value.
Gate = credentials.Gate


def _open_gate(spec: config.CredentialSpec, auths: dockerconfig.Auths) -> bool:
    return True


@dataclass(slots=True)
class _State:
    spec: config.CredentialSpec
    schedule: renewal.Schedule
    value: dockerconfig.Auths | None = field(default=None, repr=False)
    rejected: dockerconfig.Auths | None = field(default=None, repr=False)
    held: renewal.Held | None = None  # when `value` was read and ends (wall clock); set with it
    next_due: float = 0.0
    failures: int = 0
    attempted: bool = False
    warned: bool = False

    def usable(self, now: float) -> bool:
        """Whether the value may be handed out now (as long as its schedule allows)."""
        return (self.value is not None and self.held is not None
                and self.schedule.publishable(now=now, held=self.held))


class Refresher:
    """Reads due credentials and calls `on_change(names)` on new content."""

    def __init__(self, *, metrics: observability.Metrics,
                 on_change: Callable[[set[str]], None], stop: threading.Event,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 read: Reader = credentials.fetch, gate: Gate = _open_gate,
                 schedule: Scheduler = credentials.schedule) -> None:
        self._metrics = metrics
        self._on_change = on_change
        self._stop = stop
        self._clock = clock
        self._wall = wall
        self._rand = rand
        self._read = read
        self._gate = gate
        self._schedule_of = schedule
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
                    states[name] = _State(spec=spec, schedule=self._schedule_of(spec),
                                          next_due=self._clock())
            self._states = states
            self._backends = backends
        self._wake.set()

    def values(self) -> dict[str, dockerconfig.Auths]:
        """The last good value of each credential that may be published now."""
        now = self._wall()
        with self._lock:
            return {n: s.value for n, s in self._states.items()
                    if s.value is not None and s.usable(now)}

    def due_in(self, name: str) -> float | None:
        """Seconds until `name` is read next (None: not configured)."""
        with self._lock:
            state = self._states.get(name)
            return None if state is None else state.next_due - self._clock()

    def settled(self) -> bool:
        """Whether every credential has been tried at least once since start."""
        with self._lock:
            return all(s.attempted for s in self._states.values())

    def refresh_all(self) -> None:
        """Read now (SIGHUP, becoming leader) every credential whose schedule allows it — a token
        only when it has no usable value: every fetch issues a new one, which would rewrite every
        Secret."""
        with self._lock:
            now, wall = self._clock(), self._wall()
            for state in self._states.values():
                if state.schedule.read_on_demand(now=wall, held=state.held):
                    state.next_due = min(state.next_due, now)
        self._wake.set()

    def close(self) -> None:
        """Shutdown: the loop stops waiting now."""
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
                self._pause(1.0)
                continue
            wait = self.step()
            if wait > 0:  # at most a second at a time: shutdown must not wait for a refresh
                self._pause(min(wait, 1.0))

    def _pause(self, seconds: float) -> None:
        """Wait until woken (a config, SIGHUP, shutdown) or `seconds` pass; stop is checked
        after the clear, so a shutdown that woke us just before is never slept through."""
        self._wake.clear()
        if not self._stop.is_set():
            self._wake.wait(seconds)

    def step(self) -> float:
        """Read every credential that is due; seconds until the next one is due."""
        now = self._clock()
        with self._lock:
            due = [(n, s) for n, s in self._states.items() if s.next_due <= now]
        reads: dict[str, tuple[_State, credentials.Fetched]] = {}
        for name, state in due:
            fetched = self._fetch(name, state)
            if fetched is not None:
                reads[name] = (state, fetched)
        # New values go through the gate side by side: a registry that is slow to answer its
        # check (bounded by the check's deadline) never holds up another credential.
        asks = {name: (state.spec, fetched.auths) for name, (state, fetched) in reads.items()
                if fetched.auths not in (state.value, state.rejected)}
        verdicts = credentials.gate_all(self._gate, asks)
        changed = {name for name, (state, fetched) in reads.items()
                   if self._commit(name, state, fetched, verdicts.get(name, True))}
        if changed:
            self._on_change(changed)
        with self._lock:
            upcoming = min((s.next_due for s in self._states.values()), default=now + IDLE_WAIT)
        return max(0.0, min(upcoming - self._clock(), IDLE_WAIT))

    def _fetch(self, name: str, state: _State) -> credentials.Fetched | None:
        spec = state.spec
        backend = self._backends.get(spec.backend)
        if backend is None:
            return None
        try:
            fetched = self._read(spec, backend)
            credentials.check_fresh(name, fetched, state.schedule, now=self._wall())
        except credentials.CredentialError as exc:
            self._failed(name, state, exc)
            return None
        return fetched

    def _commit(self, name: str, state: _State, fetched: credentials.Fetched,
                passed: bool) -> bool:
        """Take a read value (unless the gate refused it); whether the published value changed."""
        wall = self._wall()
        with self._lock:
            changed = fetched.auths != state.value
            state.attempted = True
            if not passed:
                state.rejected = fetched.auths
            accepted = fetched.auths != state.rejected
            if accepted:
                state.value = fetched.auths
                state.rejected = None
            state.failures = 0
            self._plan_next(name, state, fetched, wall, accepted=accepted)
        self._metrics.credential_read(name, ok=accepted, now=wall, changed=changed and accepted)
        if changed and accepted:
            log.info("credential content changed", extra={"credential": name})
        return changed and accepted

    def _plan_next(self, name: str, state: _State, fetched: credentials.Fetched,
                   wall: float, *, accepted: bool) -> None:
        """When to read next (lock held), as the credential's schedule says."""
        nxt = state.schedule.after_read(now=wall, expires_at=fetched.expires_at, rand=self._rand)
        if accepted:
            state.held = renewal.Held(fetched_at=wall, expires_at=nxt.expires_at)
            if nxt.expires_at is not None:
                self._metrics.credential_expiry.labels(credential=name).set(nxt.expires_at)
        state.next_due = self._clock() + nxt.delay
        if nxt.cut and not state.warned:
            state.warned = True
            log.warning("renewBefore is longer than the token lives; renewing earlier",
                        extra={"credential": name, "retry_in": round(nxt.delay)})

    def _failed(self, name: str, state: _State, exc: credentials.CredentialError) -> None:
        wall = self._wall()
        with self._lock:
            state.attempted = True
            state.failures += 1
            delay = state.schedule.after_failure(failures=state.failures, now=wall,
                                                 held=state.held, rand=self._rand)
            state.next_due = self._clock() + delay
        self._metrics.credential_read(name, ok=False, now=wall)
        log.error("credential read failed; keeping the last good value", extra={
            "credential": name, "error": str(exc), "retry_in": round(delay, 2)})
