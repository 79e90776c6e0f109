"""The two schedules the refresher is given (syncer.core.renewal), each driven on a fake clock the
way the refresher drives it: a token is renewed `renewBefore` ahead of its expiry and never on an
interval; an interval credential is read every interval; failures back off; a manual refresh
renews a token only when it has nothing publishable. Plus which credential gets which schedule."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from syncer import config
from syncer.core import renewal
from syncer.credentials import fetch

H = 3600.0
T0 = 1_800_000_000.0
ECR = 12 * H  # the lifetime of a real ECR token


@dataclass
class Drive:
    """The refresher's use of a schedule, on a fake clock ticking every `tick` seconds: read when
    due; a backend that issues values living `life` seconds (None: no expiry) and fails while
    `down(now)`. Records every attempt and, at every tick, whether a value could be published."""

    schedule: renewal.Schedule
    life: float | None = None
    down: Callable[[float], bool] = lambda now: False
    tick: float = 60.0
    now: float = T0
    due: float = T0
    held: renewal.Held | None = None
    failures: int = 0
    attempts: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)  # ticks at which nothing was publishable
    rand: Callable[[], float] = field(
        default_factory=lambda: itertools.cycle([0.0, 0.37, 0.81, 0.5]).__next__)

    def read(self) -> None:
        self.attempts.append(self.now)
        expires = None if self.life is None else self.now + self.life
        if self.down(self.now) or not self.schedule.takes(now=self.now, expires_at=expires):
            self.failures += 1
            self.due = self.now + self.schedule.after_failure(
                failures=self.failures, now=self.now, held=self.held, rand=self.rand)
            return
        self.failures = 0
        nxt = self.schedule.after_read(now=self.now, expires_at=expires, rand=self.rand)
        self.held = renewal.Held(fetched_at=self.now, expires_at=nxt.expires_at)
        self.due = self.now + nxt.delay

    def run(self, seconds: float) -> Drive:
        end = self.now + seconds
        while self.now < end:
            if self.due <= self.now:
                self.read()
            if self.held is None or not self.schedule.publishable(now=self.now, held=self.held):
                self.gaps.append(self.now)
            # to the next tick, or to the read due before it
            self.now = min(self.due, self.now + self.tick) if self.due > self.now \
                else self.now + self.tick
        return self

    def refresh_now(self) -> None:
        if self.schedule.read_on_demand(now=self.now, held=self.held):
            self.due = min(self.due, self.now)


# -- token credentials --------------------------------------------------------------------------


@pytest.mark.parametrize(("renew_before", "period"), [(None, 6 * H), (1 * H, 11 * H)],
                         ids=["default-half-life", "renewBefore-1h"])
def test_a_token_is_renewed_renew_before_its_expiry_and_never_on_an_interval(
        renew_before: float | None, period: float) -> None:
    drive = Drive(renewal.TokenSchedule(renew_before), life=ECR).run(48 * H)

    gaps = [b - a for a, b in itertools.pairwise(drive.attempts)]
    # each renewal lands renewBefore ahead of expiry, up to 10 % of renewBefore earlier
    before = 6 * H if renew_before is None else renew_before
    assert all(period - 0.1 * before <= gap <= period for gap in gaps)
    assert len(drive.attempts) <= 48 * H / (period - 0.1 * before) + 1  # a 1 m interval: 2880
    assert drive.gaps == []  # a fresh token was always in place


def test_a_token_is_publishable_until_its_last_minute_and_a_read_reports_its_end() -> None:
    schedule = renewal.TokenSchedule()
    nxt = schedule.after_read(now=T0, expires_at=T0 + ECR, rand=lambda: 0.0)
    held = renewal.Held(fetched_at=T0, expires_at=nxt.expires_at)

    assert nxt == renewal.Next(6 * H, expires_at=T0 + ECR, cut=False)
    assert schedule.publishable(now=T0 + ECR - 61, held=held)
    assert not schedule.publishable(now=T0 + ECR - 60, held=held)
    assert not schedule.publishable(now=T0, held=renewal.Held(fetched_at=T0))  # no known end


@pytest.mark.parametrize(("expires_in", "taken"),
                         [(ECR, True), (10.0, True), (None, False), (-1.0, False), (0.0, False)],
                         ids=["fresh", "short-lived", "no-expiry", "already-expired",
                              "ends-as-it-arrives"])
def test_a_token_that_arrives_unusable_is_refused(expires_in: float | None, taken: bool) -> None:
    expires_at = None if expires_in is None else T0 + expires_in
    assert renewal.TokenSchedule().takes(now=T0, expires_at=expires_at) is taken


def test_an_arriving_expired_token_backs_off_instead_of_fetching_again_at_once() -> None:
    drive = Drive(renewal.TokenSchedule(), life=-1.0, rand=lambda: 0.5).run(10 * 60)

    gaps = [b - a for a, b in itertools.pairwise(drive.attempts)]
    assert gaps[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert len(drive.attempts) < 15  # ten minutes: no hot loop


def test_a_renew_before_longer_than_the_token_is_cut_and_says_so() -> None:
    schedule = renewal.TokenSchedule(13 * H)

    nxt = schedule.after_read(now=T0, expires_at=T0 + ECR, rand=lambda: 0.0)

    assert nxt.cut and nxt.delay == pytest.approx(0.1 * ECR)
    assert not renewal.TokenSchedule(1 * H).after_read(
        now=T0, expires_at=T0 + ECR, rand=lambda: 0.0).cut


def test_a_failed_renewal_backs_off_and_retries_land_before_the_held_token_expires() -> None:
    first_renewal = T0 + 6 * H - 0.1 * 6 * H  # at the earliest, whatever the jitter
    back = T0 + ECR - 2 * 60  # the backend returns two minutes before the first token ends
    drive = Drive(renewal.TokenSchedule(), life=ECR,
                  down=lambda now: first_renewal <= now < back).run(24 * H)

    retries = [t for t in drive.attempts if first_renewal <= t <= back + 300]
    gaps = [b - a for a, b in itertools.pairwise(retries)]
    assert gaps[:4] == pytest.approx([1.0, 2.0, 4.0, 8.0], rel=0.25)
    assert max(gaps) <= renewal.RETRY_MAX
    assert drive.gaps == []  # the retry that succeeded beat the expiry: never a gap


def test_a_manual_refresh_renews_a_token_only_without_a_publishable_one() -> None:
    schedule = renewal.TokenSchedule()
    held = renewal.Held(fetched_at=T0, expires_at=T0 + ECR)

    assert not schedule.read_on_demand(now=T0 + H, held=held)
    assert schedule.read_on_demand(now=T0 + ECR - 30, held=held)  # its last minute
    assert schedule.read_on_demand(now=T0, held=None)
    drive = Drive(schedule, life=ECR).run(H)
    drive.refresh_now()
    assert drive.run(60).attempts == [T0]  # SIGHUP: no new token


# -- interval credentials -------------------------------------------------------------------------


def test_an_interval_credential_is_read_every_interval_and_always_publishable() -> None:
    drive = Drive(renewal.IntervalSchedule(300.0), life=None).run(24 * H)

    assert [b - a for a, b in itertools.pairwise(drive.attempts)] == [300.0] * (24 * 12 - 1)
    assert drive.gaps == []


def test_an_interval_credential_ignores_an_expiry_its_backend_reports() -> None:
    nxt = renewal.IntervalSchedule(60.0).after_read(now=T0, expires_at=T0 + 10, rand=lambda: 0.0)

    assert nxt == renewal.Next(60.0)  # still the interval; nothing to show on the expiry gauge


def test_a_failing_interval_credential_backs_off_up_to_its_interval_and_keeps_its_value() -> None:
    start = T0 + 60
    drive = Drive(renewal.IntervalSchedule(60.0), rand=lambda: 0.5,
                  down=lambda now: start <= now < start + 10 * 60).run(20 * 60)

    gaps = [b - a for a, b in itertools.pairwise(drive.attempts)]
    assert gaps[:8] == [60.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert drive.failures == 0 and gaps[-3:] == [60.0] * 3  # back on the interval once healthy
    assert drive.gaps == []  # the last good value stays publishable throughout


def test_interval_backoff_is_jittered_a_quarter_either_way() -> None:
    assert [renewal.backoff(n, 60.0, rand=lambda: 0.0) for n in (1, 3, 9)] == [0.75, 3.0, 60.0]
    assert [renewal.backoff(n, 60.0, rand=lambda: 1.0) for n in (1, 3, 9)] == [1.25, 5.0, 60.0]


def test_a_manual_refresh_always_reads_an_interval_credential() -> None:
    drive = Drive(renewal.IntervalSchedule(60.0), tick=10.0).run(30)
    drive.refresh_now()
    assert drive.run(1).attempts == [T0, T0 + 30]


# -- which credential gets which schedule ---------------------------------------------------------


def test_ecr_credentials_are_renewed_by_expiry_and_the_others_on_their_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "unused")
    path = tmp_path / "c.yaml"
    path.write_text("""\
version: 1
defaults: {refreshInterval: 5m}
backends:
  ecr: {type: aws-ecr, region: us-east-1}
  vault: {type: vault, address: http://127.0.0.1:8200, auth: {method: token}}
credentials:
  prod: {backend: ecr, renewBefore: 1h}
  dev: {backend: ecr}
  hub: {backend: vault, path: registries/hub, registry: docker.io}
  ghcr: {backend: vault, path: registries/ghcr, registry: ghcr.io, refreshInterval: 30s}
mappings:
  - {name: all, namespaces: {names: [a]}, credentials: [prod, dev, hub, ghcr]}
""")
    cfg = config.load(path)

    assert {name: fetch.schedule(cfg.credentials[name]) for name in cfg.credentials} == {
        "prod": renewal.TokenSchedule(1 * H), "dev": renewal.TokenSchedule(None),
        "hub": renewal.IntervalSchedule(300.0), "ghcr": renewal.IntervalSchedule(30.0)}
