"""The renewal schedule of token credentials (syncer.core.renewal), with fixed random values and a
fake clock: when a token is renewed, when it stops being publishable, how failed renewals back
off."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncer.core import renewal

H = 3600.0
T0 = 1_700_000_000.0  # fetched_at of most cases
ECR = 12 * H  # the lifetime of a real ECR token


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


# -- when to renew ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "renew_before", "rand", "expected_offset"),
    [
        # default renew_before: half the lifetime (6 h of 12 h), jitter up to 10 % of it
        (ECR, None, 0.0, 6 * H),
        (ECR, None, 0.5, 6 * H - 0.05 * 6 * H),
        (ECR, None, 0.99, 6 * H - 0.099 * 6 * H),
        # configured renew_before: 1 h before expiry, up to 6 min earlier
        (ECR, 1 * H, 0.0, 11 * H),
        (ECR, 1 * H, 1.0, 11 * H - 0.1 * H),
        # renew_before longer than 90 % of the lifetime is cut to 90 %: never back-to-back
        (ECR, 13 * H, 0.0, 0.1 * ECR),
        (ECR, 13 * H, 1.0, 0.1 * ECR - 0.1 * 0.9 * ECR),
        # a short-lived token (tests): same rules in seconds
        (10.0, None, 0.0, 5.0),
        (10.0, 2.0, 0.5, 8.0 - 0.1),
        # a random source outside [0, 1) is clamped, so it cannot move the renewal past bounds
        (ECR, 1 * H, 7.0, 11 * H - 0.1 * H),
        (ECR, 1 * H, -3.0, 11 * H),
    ],
    ids=[
        "default-no-jitter", "default-half-jitter", "default-full-jitter", "configured",
        "configured-full-jitter", "too-long-cut", "too-long-cut-full-jitter", "short-default",
        "short-configured", "rand-above-one", "rand-below-zero",
    ],
)
def test_token_is_renewed_renew_before_its_expiry_minus_jitter(
    lifetime: float, renew_before: float | None, rand: float, expected_offset: float
) -> None:
    at = renewal.renew_at(
        fetched_at=T0, expires_at=T0 + lifetime, renew_before=renew_before, rand=fixed(rand)
    )

    assert at == pytest.approx(T0 + expected_offset)


def test_token_that_was_expired_when_fetched_is_due_at_once_and_not_publishable() -> None:
    expired = T0 - 1  # moto's fixed 2015 expiresAt looks like this

    at = renewal.renew_at(fetched_at=T0, expires_at=expired, renew_before=None, rand=fixed(0.5))

    assert at == T0
    assert not renewal.publishable(now=T0, fetched_at=T0, expires_at=expired)


@pytest.mark.parametrize(
    ("renew_before", "expected"),
    [(None, 6 * H), (1 * H, 1 * H), (0.9 * ECR, 0.9 * ECR), (13 * H, 0.9 * ECR)],
    ids=["default-half", "configured-kept", "at-the-limit-kept", "too-long-cut"],
)
def test_effective_renew_before_shows_when_the_configured_one_was_cut(
    renew_before: float | None, expected: float
) -> None:
    got = renewal.effective_renew_before(
        fetched_at=T0, expires_at=T0 + ECR, renew_before=renew_before
    )

    assert got == pytest.approx(expected)


@given(
    lifetime=st.floats(min_value=-100.0, max_value=48 * H),
    renew_before=st.none() | st.floats(min_value=1.0, max_value=100 * H),
    rand=st.floats(min_value=0.0, max_value=1.0),
)
def test_renewal_is_never_after_expiry_nor_before_the_fetch_nor_later_than_asked(
    lifetime: float, renew_before: float | None, rand: float
) -> None:
    expires_at = T0 + lifetime
    at = renewal.renew_at(
        fetched_at=T0, expires_at=expires_at, renew_before=renew_before, rand=fixed(rand)
    )
    before = renewal.effective_renew_before(
        fetched_at=T0, expires_at=expires_at, renew_before=renew_before
    )

    assert at >= T0
    assert at <= max(T0, expires_at)
    assert at <= max(T0, expires_at - before)  # jitter only ever renews earlier


# -- publishing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "left", "expected"),
    [
        (ECR, 6 * H, True),
        (ECR, 61.0, True),
        (ECR, 60.0, False),  # a 12 h token's last minute: never published
        (ECR, 0.0, False),
        (ECR, -1.0, False),  # expired
        (10.0, 0.6, True),
        (10.0, 0.5, False),  # short tokens: the last 5 % of their lifetime
    ],
    ids=["fresh", "just-before-margin", "at-margin", "at-expiry", "expired", "short-fresh",
         "short-at-margin"],
)
def test_token_is_publishable_until_its_safety_margin(
    lifetime: float, left: float, expected: bool
) -> None:
    expires_at = T0 + lifetime

    got = renewal.publishable(now=expires_at - left, fetched_at=T0, expires_at=expires_at)

    assert got is expected


@pytest.mark.parametrize(
    ("lifetime", "margin"), [(ECR, 60.0), (600.0, 30.0), (10.0, 0.5), (0.0, 0.0)],
    ids=["ecr-12h", "10-minutes", "10-seconds", "expired-at-fetch"],
)
def test_safety_margin_is_a_minute_or_five_percent_of_short_lifetimes(
    lifetime: float, margin: float
) -> None:
    assert renewal.safety_margin(fetched_at=T0, expires_at=T0 + lifetime) == pytest.approx(margin)


# -- failed renewals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "rand", "expires_in", "expected"),
    [
        (1, 0.5, None, 1.0),
        (2, 0.5, None, 2.0),
        (3, 0.5, None, 4.0),
        (3, 0.0, None, 3.0),  # -25 %
        (3, 1.0, None, 5.0),  # +25 %
        (9, 0.5, None, 256.0),
        (10, 0.5, None, 300.0),  # capped at 5 min
        (1000, 1.0, None, 300.0),
        (0, 0.5, None, 1.0),  # nonsense counts behave like the first failure
        # while the current token is valid: at most half of what it has left
        (10, 0.5, 400.0, 200.0),
        (10, 0.5, 3 * H, 300.0),
        (4, 0.5, 10.0, 5.0),
        (4, 0.5, 1.0, 1.0),  # never under 1 s, even if that lands after expiry
        (10, 0.5, -5.0, 300.0),  # already expired: plain backoff
    ],
    ids=[
        "first", "second", "third", "third-low-jitter", "third-high-jitter", "ninth", "capped",
        "far-capped", "zero-failures", "half-of-what-is-left", "cap-below-half-left",
        "short-left", "floor", "expired",
    ],
)
def test_failed_renewal_backs_off_exponentially_and_lands_before_expiry(
    failures: int, rand: float, expires_in: float | None, expected: float
) -> None:
    now = T0 + 5 * H
    expires_at = None if expires_in is None else now + expires_in

    delay = renewal.retry_delay(failures=failures, now=now, expires_at=expires_at, rand=fixed(rand))

    assert delay == pytest.approx(expected)


def test_backoff_grows_with_each_failure_for_any_fixed_jitter() -> None:
    for rand in (0.0, 0.3, 1.0):
        delays = [
            renewal.retry_delay(failures=n, now=T0, expires_at=None, rand=fixed(rand))
            for n in range(1, 15)
        ]
        assert delays == sorted(delays)
        assert delays[0] < delays[-1] == renewal.RETRY_MAX


# -- a day on a fake clock -------------------------------------------------------------------


def simulate(
    *, hours: float, lifetime: float, renew_before: float | None,
    down: tuple[float, float] | None = None,
) -> tuple[list[float], list[tuple[float, float]]]:
    """Drive the schedule on a fake clock: the backend issues `lifetime`-long tokens and fails
    during `down` (start, end). Returns the fetch attempts and the (publish time, expiry) of
    every token that was published."""
    rand = itertools.cycle([0.0, 0.37, 0.81, 0.5]).__next__
    now, end = T0, T0 + hours * H
    attempts: list[float] = []
    published: list[tuple[float, float]] = []
    current: float | None = None  # expiry of the token in the cluster
    failures = 0
    while now < end:
        attempts.append(now)
        if down is not None and down[0] <= now < down[1]:
            failures += 1
            now += renewal.retry_delay(failures=failures, now=now, expires_at=current, rand=rand)
            continue
        failures = 0
        fetched, expires = now, now + lifetime
        if renewal.publishable(now=now, fetched_at=fetched, expires_at=expires):
            published.append((now, expires))
            current = expires
        now = renewal.renew_at(
            fetched_at=fetched, expires_at=expires, renew_before=renew_before, rand=rand
        )
    return attempts, published


def test_a_day_of_ecr_tokens_takes_five_fetches_by_default() -> None:
    attempts, published = simulate(hours=24, lifetime=ECR, renew_before=None)

    # renewed every 5.4-6 h: 0, ~6, ~11.5, ~16.6, ~22 h; a fixed 1 m interval would be 1440
    assert len(attempts) == 5
    assert len(published) == 5
    for (_, expires), (next_publish, _) in itertools.pairwise(published):
        assert next_publish < expires  # a new token is in place before the old one ends


def test_renewal_during_an_outage_retries_until_it_succeeds_before_the_token_expires() -> None:
    # the first renewal falls at ~6 h; the backend is down from 5 h until 1 min before the
    # first token expires: 5-min steps would overshoot, halving what is left does not
    back = T0 + ECR - 60
    attempts, published = simulate(
        hours=24, lifetime=ECR, renew_before=None, down=(T0 + 5 * H, back)
    )

    retries = [t for t in attempts if T0 + 5 * H <= t < back]
    gaps = [b - a for a, b in itertools.pairwise(retries)]
    assert 10 < len(retries) < 150  # bounded: backoff, at most one try per 5 min at the cap
    assert max(gaps) <= renewal.RETRY_MAX
    assert published[1][0] < published[0][1]  # the retry that succeeded beat the expiry
    assert all(publish < expires for publish, expires in published)


def test_outage_longer_than_the_token_keeps_retrying_without_a_hot_loop() -> None:
    attempts, published = simulate(
        hours=24, lifetime=ECR, renew_before=None, down=(T0 + 5 * H, T0 + 20 * H)
    )

    first_expiry = published[0][1]
    after = [t for t in attempts if first_expiry < t < T0 + 20 * H]
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert len(after) > 50  # it never gives up on an expired credential
    assert min(gaps) >= 0.75 * renewal.RETRY_MAX  # ... nor hammers the backend
    assert published[1][0] >= T0 + 20 * H  # the next token came only when the backend was back
