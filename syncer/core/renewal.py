"""When each credential is read again, whether its value may be published, and how long to wait
after a failed read: the two schedules the refresher is given, one per credential, and the token
arithmetic behind the second. Pure: no I/O, no clock and no global random state; times (Unix
seconds) and the random source (``rand() -> [0, 1)``) are arguments.

- :class:`IntervalSchedule` (every backend that does not issue tokens): read once per
  ``refreshInterval``; a value is good until replaced; backoff after failures, capped at the
  interval (:func:`backoff`).
- :class:`TokenSchedule` (aws-ecr, docs/backend-aws-ecr.md): a token fetched at ``fetched_at``
  that ends at ``expires_at`` is renewed ``renew_before`` ahead of its expiry (default: half its
  lifetime), minus a random jitter of up to 10 % of ``renew_before`` so that many credentials
  fetched together do not renew together, and never later than that (:func:`renew_at`); it is
  published only while :func:`publishable`; failed renewals back off by :func:`retry_delay`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

JITTER = 0.10
"""Renewal happens up to this fraction of ``renew_before`` before ``expires_at - renew_before``."""

MAX_RENEW_FRACTION = 0.9
"""A ``renew_before`` longer than this fraction of the lifetime is cut to it: a token is held for
at least a tenth of its life (minus jitter), so a too-long ``renewBefore`` cannot turn into
back-to-back fetches."""

SAFETY_MARGIN = 60.0
"""A token is no longer published in its last minute (or its last 5 % of lifetime, if shorter):
a pull that starts with it must still be able to finish its login."""
SAFETY_FRACTION = 0.05

INTERVAL_BACKOFF_INITIAL = 1.0
"""Backoff after failed reads of an interval credential: 1 s, 2 s, 4 s … ±25 %, at most the
interval (:func:`backoff`)."""

RETRY_INITIAL = 1.0
RETRY_MAX = 300.0
RETRY_MIN = 1.0
"""Backoff after failed renewals: 1 s, 2 s, 4 s … ±25 %, at most 5 min, and while the current
token is valid at most half of the time it has left (but never under 1 s), so that retries keep
landing before it expires."""


def lifetime(*, fetched_at: float, expires_at: float) -> float:
    """How long the token was valid when fetched; 0 for a token that was already expired."""
    return max(0.0, expires_at - fetched_at)


def effective_renew_before(
    *, fetched_at: float, expires_at: float, renew_before: float | None
) -> float:
    """The ``renew_before`` the schedule uses: the configured one, or half the lifetime, and at
    most :data:`MAX_RENEW_FRACTION` of the lifetime. Differs from a configured value exactly when
    it was cut (worth a warning)."""
    life = lifetime(fetched_at=fetched_at, expires_at=expires_at)
    wanted = life / 2 if renew_before is None else renew_before
    return min(wanted, life * MAX_RENEW_FRACTION)


def renew_at(
    *,
    fetched_at: float,
    expires_at: float,
    renew_before: float | None,
    rand: Callable[[], float],
) -> float:
    """When to fetch the next token: ``expires_at - renew_before - jitter``, where ``jitter`` is
    ``rand() * 10 %`` of ``renew_before``; never before ``fetched_at``.

    A token that was already expired when fetched (``expires_at <= fetched_at``) is due at once:
    it is not :func:`publishable`, so the caller counts it as a failed renewal and backs off
    with :func:`retry_delay` rather than fetching again immediately.
    """
    before = effective_renew_before(
        fetched_at=fetched_at, expires_at=expires_at, renew_before=renew_before
    )
    jitter = _unit(rand) * JITTER * before
    return max(fetched_at, expires_at - before - jitter)


def safety_margin(*, fetched_at: float, expires_at: float) -> float:
    """How long before its expiry a token stops being publishable: 60 s, or 5 % of its
    lifetime if that is less (a 12 h token: 60 s; a 10 s test token: 0.5 s)."""
    life = lifetime(fetched_at=fetched_at, expires_at=expires_at)
    return min(SAFETY_MARGIN, SAFETY_FRACTION * life)


def publishable(*, now: float, fetched_at: float, expires_at: float) -> bool:
    """Whether a token may be written to the cluster at ``now``: ``now`` is before
    ``expires_at - safety_margin``. An expired token is never published."""
    margin = safety_margin(fetched_at=fetched_at, expires_at=expires_at)
    return now < expires_at - margin


def retry_delay(
    *,
    failures: int,
    now: float,
    expires_at: float | None,
    rand: Callable[[], float],
) -> float:
    """Seconds to wait before renewal attempt number ``failures + 1`` (``failures`` >= 1 failed
    in a row): 1 s, 2 s, 4 s … with ±25 % jitter, at most 5 min. While the current token
    (``expires_at``; ``None`` if there is none) is still valid, at most half of what it has left,
    so the retry lands before it expires; never less than 1 s."""
    delay = RETRY_INITIAL * 2.0 ** min(max(failures, 1) - 1, 20)
    delay = min(RETRY_MAX, delay * (0.75 + 0.5 * _unit(rand)))
    if expires_at is not None and expires_at > now:
        delay = min(delay, (expires_at - now) / 2)
    return max(RETRY_MIN, delay)


def backoff(failures: int, interval: float, *, rand: Callable[[], float]) -> float:
    """Delay before retry number ``failures`` (1, 2, …) of an interval credential: 1 s, 2 s,
    4 s … with ±25 % jitter, never more than the refresh ``interval``."""
    delay = INTERVAL_BACKOFF_INITIAL * 2.0 ** min(max(failures, 1) - 1, 20)
    return min(interval, delay * (0.75 + 0.5 * _unit(rand)))


# -- the schedules ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """The value a credential holds now: when it was read and when it stops working (``None``:
    it does not expire)."""

    fetched_at: float
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Next:
    """What follows a good read: ``delay`` seconds until the next read; ``expires_at``, the end
    of the value just read if it has one (held, and shown on the expiry gauge); ``cut``: the
    configured ``renewBefore`` is longer than the value lives and was shortened (worth a
    warning)."""

    delay: float
    expires_at: float | None = None
    cut: bool = False


class Schedule(Protocol):
    """The questions the refresher asks about one credential; every answer is a pure function of
    its arguments (``now``: Unix seconds)."""

    def takes(self, *, now: float, expires_at: float | None) -> bool:
        """Whether a value just read (ending at ``expires_at``) may be taken at all; one that
        is refused counts as a failed read."""
        ...

    def after_read(self, *, now: float, expires_at: float | None,
                   rand: Callable[[], float]) -> Next:
        """When to read again after a good read at ``now`` (a value it :meth:`takes`)."""
        ...

    def publishable(self, *, now: float, held: Held) -> bool:
        """Whether the held value may be written to the cluster at ``now``."""
        ...

    def after_failure(self, *, failures: int, now: float, held: Held | None,
                      rand: Callable[[], float]) -> float:
        """Seconds until the next attempt after ``failures`` (>= 1) failed reads in a row,
        holding ``held`` (``None``: no value yet)."""
        ...

    def read_on_demand(self, *, now: float, held: Held | None) -> bool:
        """Whether a manual refresh (SIGHUP, becoming leader) reads now rather than when due."""
        ...


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Read every ``interval`` seconds; the value is good until the next read replaces it."""

    interval: float

    def takes(self, *, now: float, expires_at: float | None) -> bool:
        return True

    def after_read(self, *, now: float, expires_at: float | None,
                   rand: Callable[[], float]) -> Next:
        return Next(self.interval)

    def publishable(self, *, now: float, held: Held) -> bool:
        return True

    def after_failure(self, *, failures: int, now: float, held: Held | None,
                      rand: Callable[[], float]) -> float:
        return backoff(failures, self.interval, rand=rand)

    def read_on_demand(self, *, now: float, held: Held | None) -> bool:
        """Always: a read costs one backend call and writes only what changed."""
        return True


@dataclass(frozen=True, slots=True)
class TokenSchedule:
    """Renew an expiring token ``renew_before`` (``None``: half its life) ahead of its expiry,
    never on an interval; publish it only while :func:`publishable`."""

    renew_before: float | None = None

    def takes(self, *, now: float, expires_at: float | None) -> bool:
        """A token that arrives without an end or already expired is refused (its lifetime counts
        from its arrival, so the safety margin of :func:`publishable` is that of its length)."""
        return expires_at is not None and publishable(now=now, fetched_at=now,
                                                      expires_at=expires_at)

    def after_read(self, *, now: float, expires_at: float | None,
                   rand: Callable[[], float]) -> Next:
        """Due at :func:`renew_at`; a token without an end (which :meth:`takes` refuses) is due
        at once."""
        end = now if expires_at is None else expires_at
        at = renew_at(fetched_at=now, expires_at=end, renew_before=self.renew_before, rand=rand)
        used = effective_renew_before(fetched_at=now, expires_at=end,
                                      renew_before=self.renew_before)
        cut = self.renew_before is not None and used < self.renew_before
        return Next(at - now, expires_at=expires_at, cut=cut)

    def publishable(self, *, now: float, held: Held) -> bool:
        return held.expires_at is not None and publishable(
            now=now, fetched_at=held.fetched_at, expires_at=held.expires_at)

    def after_failure(self, *, failures: int, now: float, held: Held | None,
                      rand: Callable[[], float]) -> float:
        """:func:`retry_delay`, landing before the held token expires while it is still
        publishable."""
        valid = held is not None and self.publishable(now=now, held=held)
        return retry_delay(failures=failures, now=now,
                           expires_at=held.expires_at if valid and held else None, rand=rand)

    def read_on_demand(self, *, now: float, held: Held | None) -> bool:
        """Only without a publishable token: every fetch issues a new one, which would rewrite
        every Secret that holds it."""
        return held is None or not self.publishable(now=now, held=held)


def _unit(rand: Callable[[], float]) -> float:
    """``rand()`` clamped to [0, 1], so a bad source cannot move a renewal past its bounds."""
    return min(1.0, max(0.0, rand()))
