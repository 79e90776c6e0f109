"""When to renew an expiring token credential (aws-ecr), whether a token may still be published,
and how long to wait after a failed renewal. Pure: no I/O, no clock and no global random state;
times (Unix seconds) and the random source (``rand() -> [0, 1)``) are arguments.

The schedule (docs/backend-aws-ecr.md): a token fetched at ``fetched_at`` that ends at
``expires_at`` is renewed ``renew_before`` ahead of its expiry (default: half its lifetime),
minus a random jitter of up to 10 % of ``renew_before`` so that many credentials fetched
together do not renew together, and never later than that.
"""

from __future__ import annotations

from collections.abc import Callable

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


def _unit(rand: Callable[[], float]) -> float:
    """``rand()`` clamped to [0, 1], so a bad source cannot move a renewal past its bounds."""
    return min(1.0, max(0.0, rand()))
