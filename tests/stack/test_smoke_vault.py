"""Smoke tests proving the OpenBao server of the stack is a real Vault-API server."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest


def test_kv2_keeps_versions_and_metadata(vault, unique):
    client = vault.client()
    path = f"smoke/{unique}/registry"
    kv2 = client.secrets.kv.v2
    kv2.create_or_update_secret(path, secret={"password": "pw-SENTINEL-1"},
                                mount_point=vault.kv2_mount)
    kv2.create_or_update_secret(path, secret={"password": "pw-SENTINEL-2"},
                                mount_point=vault.kv2_mount)

    latest = kv2.read_secret_version(path, mount_point=vault.kv2_mount,
                                     raise_on_deleted_version=True)
    first = kv2.read_secret_version(path, version=1, mount_point=vault.kv2_mount,
                                    raise_on_deleted_version=True)
    metadata = kv2.read_secret_metadata(path, mount_point=vault.kv2_mount)

    assert latest["data"]["data"] == {"password": "pw-SENTINEL-2"}
    assert latest["data"]["metadata"]["version"] == 2
    assert first["data"]["data"] == {"password": "pw-SENTINEL-1"}
    assert metadata["data"]["current_version"] == 2
    assert sorted(metadata["data"]["versions"]) == ["1", "2"]


def test_kv1_mount_reads_back_what_was_written(vault, unique):
    client = vault.client()
    path = f"smoke/{unique}"
    client.secrets.kv.v1.create_or_update_secret(path, secret={"username": "u"},
                                                 mount_point=vault.kv1_mount)

    read = client.secrets.kv.v1.read_secret(path, mount_point=vault.kv1_mount)

    assert read["data"] == {"username": "u"}


def test_token_has_a_ttl_and_renewal_extends_it(vault):
    root = vault.client()
    created = root.auth.token.create(ttl="30m", explicit_max_ttl="2h", renewable=True,
                                     display_name="smoke")
    token = created["auth"]["client_token"]
    user = vault.client(token=token)

    before = user.auth.token.lookup_self()["data"]
    renewed = user.auth.token.renew_self(increment="1h")
    after = user.auth.token.lookup_self()["data"]

    assert before["renewable"] is True
    assert 0 < before["ttl"] <= 30 * 60
    assert renewed["auth"]["lease_duration"] > 30 * 60
    assert after["ttl"] > 30 * 60


def test_revoked_token_is_refused(vault):
    token = vault.client().auth.token.create(ttl="5m")["auth"]["client_token"]
    vault.client().auth.token.revoke(token)

    with pytest.raises(hvac.exceptions.Forbidden):
        vault.client(token=token).auth.token.lookup_self()


def test_approle_login_issues_a_token(vault, unique):
    root = vault.client()
    role = f"smoke-{unique}"
    root.auth.approle.create_or_update_approle(role, token_ttl="10m",
                                               mount_point=vault.approle_mount)
    role_id = root.auth.approle.read_role_id(
        role, mount_point=vault.approle_mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(
        role, mount_point=vault.approle_mount)["data"]["secret_id"]

    login = hvac.Client(url=vault.addr).auth.approle.login(
        role_id, secret_id, mount_point=vault.approle_mount)

    assert login["auth"]["client_token"]
    assert login["auth"]["lease_duration"] == 600
