"""Token credentials (aws-ecr) in the refresher, with a fake clock: renewal by expiry, never on
the interval; zero backend calls between renewals; backoff; an expired token is never handed out;
SIGHUP leaves a fresh token alone."""

from __future__ import annotations

import base64
import itertools
import threading
from pathlib import Path
from typing import Any

import pytest

from backends import base
from syncer import config
from syncer.run import refresher
from syncer.telemetry import observability
from tests.unit import fakes

HOUR = 3600.0
LIFE = 12 * HOUR

ECR_CONFIG = """\
version: 1
backends:
  ecr: {{type: aws-ecr, region: us-east-1, endpointUrl: "http://127.0.0.1:1"}}
  vault: {{type: vault, address: http://127.0.0.1:8200, auth: {{method: token}}}}
credentials:
  prod: {{backend: ecr{extra}}}
  hub: {{backend: vault, path: registries/hub, registry: docker.io}}
mappings:
  - name: all
    namespaces: {{patterns: ["team-*"]}}
    credentials: [prod, hub]
"""


class Ecr:
    """A fake ECR: every fetch issues a new token that lives `life` seconds from `clock()`."""

    def __init__(self, clock: fakes.FakeClock, *, life: float = LIFE) -> None:
        self.clock = clock
        self.life = life
        self.down = False
        self.fetches = 0
        self._n = itertools.count(1)

    def answer(self, ref: base.CredentialRef) -> dict[str, Any]:
        if self.down:
            raise base.Unavailable("aws-ecr backend 'ecr': GetAuthorizationToken: 503")
        self.fetches += 1
        n = next(self._n)
        token = base64.b64encode(f"AWS:token-SENTINEL-{n}".encode()).decode()
        return {"auths": {"123456789012.dkr.ecr.us-east-1.amazonaws.com": {"auth": token}}}

    def expires(self) -> float:
        return self.clock() + self.life


@pytest.fixture
def clock() -> fakes.FakeClock:
    return fakes.FakeClock(start=1_800_000_000.0)


def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: fakes.FakeClock, ecr: Ecr, *,
         extra: str = "", metrics: observability.Metrics | None = None,
         ) -> tuple[refresher.Refresher, list[set[str]], fakes.FakeBackend]:
    monkeypatch.setenv("VAULT_TOKEN", "unused")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    path = tmp_path / "ecr.yaml"
    path.write_text(ECR_CONFIG.format(extra=extra))
    cfg = config.load(path)
    changed: list[set[str]] = []
    hub = fakes.FakeBackend(fakes.basic())
    r = refresher.Refresher(metrics=metrics or observability.Metrics(), on_change=changed.append,
                            stop=threading.Event(), clock=clock, wall=clock, rand=lambda: 0.5)
    r.configure(cfg, {"ecr": fakes.FakeBackend(ecr.answer, expires=ecr.expires), "vault": hub})
    return r, changed, hub


def test_a_token_is_renewed_before_expiry_not_on_the_refresh_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: fakes.FakeClock) -> None:
    ecr = Ecr(clock)
    r, changed, hub = make(tmp_path, monkeypatch, clock, ecr)
    r.step()
    assert ecr.fetches == 1 and changed == [{"prod", "hub"}]
    # default renewBefore = half the lifetime (6 h), minus up to 10 % jitter (rand 0.5: 18 min)
    assert r.due_in("prod") == pytest.approx(6 * HOUR - 0.05 * 6 * HOUR)
    for _ in range(5 * 60):  # five hours of one-minute cycles
        clock.advance(60)
        r.step()
    assert ecr.fetches == 1  # zero token calls between renewals
    assert len(hub.reads) == 1 + 5 * 60 // 1  # the Vault credential: once per interval
    clock.advance(r.due_in("prod") or 0)
    r.step()
    assert ecr.fetches == 2 and {"prod"} in changed


def test_renew_before_sets_the_renewal_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            clock: fakes.FakeClock) -> None:
    ecr = Ecr(clock)
    r, _, _ = make(tmp_path, monkeypatch, clock, ecr, extra=", renewBefore: 1h")
    r.step()
    assert r.due_in("prod") == pytest.approx(LIFE - HOUR - 0.05 * HOUR)


def test_a_failed_renewal_backs_off_and_keeps_the_valid_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: fakes.FakeClock) -> None:
    ecr = Ecr(clock)
    r, _, _ = make(tmp_path, monkeypatch, clock, ecr)
    r.step()
    token = r.values()["prod"]
    clock.advance(r.due_in("prod") or 0)
    ecr.down = True
    waits = []
    for _ in range(6):
        r.step()
        waits.append(r.due_in("prod"))
        clock.advance(waits[-1] or 0)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert r.values()["prod"] == token  # still valid: still handed out
    ecr.down = False
    r.step()
    assert r.values()["prod"] != token


def test_an_expired_token_is_never_handed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              clock: fakes.FakeClock) -> None:
    ecr = Ecr(clock)
    r, _, _ = make(tmp_path, monkeypatch, clock, ecr)
    r.step()
    ecr.down = True
    clock.advance(LIFE - 30)  # inside the last minute of its life: no longer publishable
    assert "prod" not in r.values() and "hub" in r.values()


def test_a_token_that_arrives_expired_is_a_failed_renewal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: fakes.FakeClock) -> None:
    ecr = Ecr(clock, life=-1.0)  # like moto's raw answer: expiresAt in 2015
    r, changed, _ = make(tmp_path, monkeypatch, clock, ecr)
    r.step()
    assert "prod" not in r.values() and changed == [{"hub"}]
    assert r.due_in("prod") == 1.0  # backs off instead of fetching again at once


def test_sighup_does_not_renew_a_fresh_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             clock: fakes.FakeClock) -> None:
    ecr = Ecr(clock)
    r, _, hub = make(tmp_path, monkeypatch, clock, ecr)
    r.step()
    r.refresh_all()
    r.step()
    assert ecr.fetches == 1 and len(hub.reads) == 2


def test_a_renew_before_longer_than_the_token_lives_is_cut_with_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: fakes.FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    ecr = Ecr(clock)
    r, _, _ = make(tmp_path, monkeypatch, clock, ecr, extra=", renewBefore: 13h")
    r.step()
    assert r.due_in("prod") == pytest.approx(LIFE - 0.9 * LIFE - 0.05 * 0.9 * LIFE)
    clock.advance(r.due_in("prod") or 0)
    r.step()
    warnings = [rec for rec in caplog.records if "renewBefore" in rec.getMessage()]
    assert len(warnings) == 1


def test_the_expiry_gauge_shows_when_the_current_token_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: fakes.FakeClock) -> None:
    ecr = Ecr(clock)
    metrics = observability.Metrics()
    r, _, _ = make(tmp_path, monkeypatch, clock, ecr, metrics=metrics)
    r.step()
    gauge = metrics.registry.get_sample_value(
        "pullsecret_syncer_credential_expiry_timestamp_seconds", {"credential": "prod"})
    assert gauge == clock() + LIFE
    assert "SENTINEL" not in metrics.render().decode()
