"""When the vault backend renews or logs in again, and how it reads login material."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends import base, vault_auth

Step = vault_auth.Step


def lease(*, ttl: float = 3600, renewable: bool = True, now: float = 0) -> vault_auth.Lease:
    return vault_auth.Lease.granted("hvs.SENTINEL", ttl=ttl, renewable=renewable, now=now)


def test_without_a_lease_the_backend_logs_in() -> None:
    assert vault_auth.next_step(None, now=0, can_login=False) is Step.LOGIN


def test_a_token_without_ttl_is_used_forever() -> None:
    assert vault_auth.next_step(lease(ttl=0), now=10**9, can_login=True) is Step.USE


@pytest.mark.parametrize(
    ("elapsed", "renewable", "can_login", "expected"),
    [
        (2399, True, True, Step.USE),  # 1201 s of 3600 left: more than a third
        (2401, True, True, Step.RENEW),
        (2401, True, False, Step.RENEW),  # static tokens are renewed too
        (2401, False, True, Step.LOGIN),  # cannot renew: log in again before it expires
        (2401, False, False, Step.USE),  # static, not renewable: nothing to do
        (9999, False, True, Step.LOGIN),  # expired
    ],
)
def test_renewal_starts_when_less_than_a_third_of_the_ttl_is_left(
    elapsed: float, renewable: bool, can_login: bool, expected: Step
) -> None:
    held = lease(renewable=renewable)

    assert vault_auth.next_step(held, now=elapsed, can_login=can_login) is expected


def test_a_renewal_resets_the_clock() -> None:
    renewed = lease().renewed(lease_duration=3600, renewable=True, now=2500)

    assert vault_auth.next_step(renewed, now=2600, can_login=True) is Step.USE
    assert renewed.ttl == 3600


def test_a_renewal_capped_by_max_ttl_leads_to_a_fresh_login() -> None:
    renewed = lease().renewed(lease_duration=300, renewable=True, now=2500)

    assert not renewed.renewable
    assert vault_auth.next_step(renewed, now=2500, can_login=True) is Step.LOGIN


def test_lease_repr_hides_the_token() -> None:
    assert "SENTINEL" not in repr(lease())


def test_secret_file_is_read_fresh_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "secret-id"
    path.write_text("first\n")
    first = vault_auth.read_secret_file(str(path), backend="v", key="secretIdFile")
    path.write_text("second\n")

    assert (first, vault_auth.read_secret_file(str(path), backend="v", key="secretIdFile")) == (
        "first",
        "second",
    )


@pytest.mark.parametrize("content", [None, "", "  \n"], ids=["missing", "empty", "blank"])
def test_unusable_secret_file_is_access_denied_naming_the_key_and_file(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "jwt"
    if content is not None:
        path.write_text(content)

    with pytest.raises(base.AccessDenied) as caught:
        vault_auth.read_secret_file(str(path), backend="vault-dev", key="jwtFile")

    assert "auth.jwtFile" in str(caught.value)
    assert str(path) in str(caught.value)


def test_binary_secret_file_error_does_not_quote_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"\xffSENTINEL")

    with pytest.raises(base.AccessDenied) as caught:
        vault_auth.read_secret_file(str(path), backend="v", key="tokenFile")

    assert "SENTINEL" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_static_token_prefers_the_file_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "from-env")
    path = tmp_path / "token"
    path.write_text("from-file")

    assert vault_auth.static_token(str(path), backend="v") == "from-file"
    assert vault_auth.static_token(None, backend="v") == "from-env"
