"""The vault backend against a real OpenBao dev server: KV reads, auth methods, renewal, errors.

Request counts come from the fault proxy in front of the server (an independent observer), never
from the client under test. Every error is checked for leaked sentinel values and tokens.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends import base
from backends import vault as vault_backend

pytestmark = pytest.mark.integration

SENTINEL = "pw-SENTINEL-7f3a"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def assert_clean(exc: BaseException, *secrets: str) -> None:
    """Neither the message nor the chained causes show a sentinel or any of ``secrets``."""
    text = "".join(traceback.format_exception(exc)) + repr(exc)
    assert "SENTINEL" not in text
    for secret in secrets:
        assert secret not in text


def exact(path: str) -> str:
    """A fault-proxy path pattern matching exactly ``path`` (no query)."""
    return "^" + re.escape(path) + "$"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def open_backend() -> Iterator[Callable[..., vault_backend.VaultBackend]]:
    """Builds backends from a settings mapping (as in the config file) and closes them after."""
    made: list[vault_backend.VaultBackend] = []

    def make(settings: dict[str, Any], **kwargs: Any) -> vault_backend.VaultBackend:
        model = vault_backend.VaultSettings.model_validate(settings)
        backend = vault_backend.VaultBackend("vault-test", model, **kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def ref(path: str, *, mount: str = "secret", kv_version: int = 2) -> base.CredentialRef:
    options = vault_backend.VaultRef.model_validate(
        {"mount": mount, "path": path, "kvVersion": kv_version}
    )
    return base.CredentialRef(name="dockerhub", options=options)


def write_kv2(vault: Any, path: str, data: dict[str, str]) -> None:
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret=data, mount_point=vault.kv2_mount
    )


def reader_policy(vault: Any, name: str, *paths: str) -> str:
    rules = "\n".join(f'path "{p}" {{ capabilities = ["read"] }}' for p in paths)
    vault.client().sys.create_or_update_policy(name=name, policy=rules)
    return name


def create_token(
    vault: Any, *, policies: list[str], ttl: str = "1h", renewable: bool = True
) -> str:
    resp = vault.client().auth.token.create(
        policies=policies, ttl=ttl, renewable=renewable, no_default_policy=False
    )
    return str(resp["auth"]["client_token"])


def token_file(tmp_path: Path, token: str, name: str = "token") -> str:
    path = tmp_path / name
    path.write_text(token + "\n")
    return str(path)


@pytest.fixture
def secret_path(vault: Any, unique: str) -> str:
    path = f"registries/dockerhub-{unique}"
    write_kv2(vault, path, {"username": "robot", "password": SENTINEL})
    return path


@pytest.fixture
def reader_token(vault: Any, unique: str, secret_path: str) -> str:
    policy = reader_policy(vault, f"read-{unique}", f"{vault.kv2_mount}/data/{secret_path}")
    return create_token(vault, policies=[policy])


# -- KV reads --------------------------------------------------------------------------------


def test_kv2_read_returns_the_current_data_and_its_version(
    vault: Any, open_backend: Any, secret_path: str, reader_token: str, tmp_path: Path
) -> None:
    write_kv2(vault, secret_path, {"username": "robot", "password": SENTINEL + "-v2"})
    backend = open_backend(
        {"address": vault.addr, "auth": {"tokenFile": token_file(tmp_path, reader_token)}}
    )

    payload = backend.fetch(ref(secret_path))

    assert dict(payload.data) == {"username": "robot", "password": SENTINEL + "-v2"}
    assert payload.version == "2"
    assert SENTINEL not in repr(payload)


def test_kv1_read_returns_the_data_without_a_version(
    vault: Any, open_backend: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"registries/ghcr-{unique}"
    vault.client().secrets.kv.v1.create_or_update_secret(
        path=path, secret={"username": "bot", "password": SENTINEL}, mount_point=vault.kv1_mount
    )
    policy = reader_policy(vault, f"kv1-{unique}", f"{vault.kv1_mount}/{path}")
    monkeypatch.setenv("VAULT_TOKEN", create_token(vault, policies=[policy]))
    backend = open_backend({"address": vault.addr})

    payload = backend.fetch(ref(path, mount=vault.kv1_mount, kv_version=1))

    assert dict(payload.data) == {"username": "bot", "password": SENTINEL}
    assert payload.version is None


@pytest.mark.parametrize("kv_version", [1, 2])
def test_missing_path_is_not_found_naming_the_path(
    vault: Any, open_backend: Any, unique: str, monkeypatch: pytest.MonkeyPatch, kv_version: int
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    backend = open_backend({"address": vault.addr})
    mount = vault.kv2_mount if kv_version == 2 else vault.kv1_mount

    with pytest.raises(base.NotFound) as caught:
        backend.fetch(ref(f"nothing/here-{unique}", mount=mount, kv_version=kv_version))

    assert f"{mount}/nothing/here-{unique}" in str(caught.value)
    assert "404" in str(caught.value)
    assert_clean(caught.value, vault.token)


@pytest.mark.parametrize("how", ["soft-deleted", "destroyed"])
def test_deleted_current_kv2_version_is_not_found(
    vault: Any, open_backend: Any, secret_path: str, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    client = vault.client()
    if how == "soft-deleted":
        client.secrets.kv.v2.delete_latest_version_of_secret(
            path=secret_path, mount_point=vault.kv2_mount
        )
    else:
        client.secrets.kv.v2.destroy_secret_versions(
            path=secret_path, versions=[1], mount_point=vault.kv2_mount
        )
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    backend = open_backend({"address": vault.addr})

    with pytest.raises(base.NotFound) as caught:
        backend.fetch(ref(secret_path))

    assert_clean(caught.value)


def test_kv_read_inside_a_vault_namespace_sends_the_namespace_header(
    vault: Any, open_backend: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = f"team-{unique}"
    root = vault.client()
    root.adapter.post(f"/v1/sys/namespaces/{namespace}", json={})
    scoped = vault.client()
    scoped.adapter.namespace = namespace
    scoped.sys.enable_secrets_engine("kv", path="kvns", options={"version": "2"})
    scoped.secrets.kv.v2.create_or_update_secret(
        path="reg", secret={"password": SENTINEL}, mount_point="kvns"
    )
    monkeypatch.setenv("VAULT_TOKEN", vault.token)

    inside = open_backend({"address": vault.addr, "namespace": namespace})
    outside = open_backend({"address": vault.addr})

    assert dict(inside.fetch(ref("reg", mount="kvns")).data) == {"password": SENTINEL}
    with pytest.raises(base.NotFound) as caught:
        outside.fetch(ref("reg", mount="kvns"))
    assert_clean(caught.value, vault.token)


# -- errors ----------------------------------------------------------------------------------


def test_token_without_a_policy_for_the_path_is_access_denied(
    vault: Any, open_backend: Any, secret_path: str, tmp_path: Path
) -> None:
    token = create_token(vault, policies=["default"])
    backend = open_backend(
        {"address": vault.addr, "auth": {"tokenFile": token_file(tmp_path, token)}}
    )

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref(secret_path))

    assert f"secret/{secret_path}" in str(caught.value)
    assert "403" in str(caught.value)
    assert_clean(caught.value, token)


def test_revoked_static_token_is_access_denied(
    vault: Any, open_backend: Any, secret_path: str, reader_token: str, tmp_path: Path
) -> None:
    backend = open_backend(
        {"address": vault.addr, "auth": {"tokenFile": token_file(tmp_path, reader_token)}}
    )
    backend.fetch(ref(secret_path))
    vault.client().auth.token.revoke(reader_token)

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref(secret_path))

    assert_clean(caught.value, reader_token)


def test_rotated_token_file_is_picked_up_after_a_denial(
    vault: Any, open_backend: Any, secret_path: str, reader_token: str, tmp_path: Path, unique: str
) -> None:
    path = token_file(tmp_path, reader_token)
    backend = open_backend({"address": vault.addr, "auth": {"tokenFile": path}})
    backend.fetch(ref(secret_path))
    vault.client().auth.token.revoke(reader_token)
    policy = reader_policy(vault, f"rot-{unique}", f"{vault.kv2_mount}/data/{secret_path}")
    Path(path).write_text(create_token(vault, policies=[policy]))

    assert dict(backend.fetch(ref(secret_path)).data)["username"] == "robot"


def test_server_down_is_unavailable(open_backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-a-real-token")
    backend = open_backend({"address": f"http://127.0.0.1:{free_port()}"})

    with pytest.raises(base.Unavailable) as caught:
        backend.fetch(ref("registries/anything"))

    assert caught.value.retryable
    assert_clean(caught.value, "hvs.not-a-real-token")


def test_503_is_unavailable_and_the_next_fetch_succeeds(
    vault: Any, open_backend: Any, fault_proxy: Any, secret_path: str, reader_token: str,
    tmp_path: Path,
) -> None:
    proxy = fault_proxy(vault.addr)
    data_path = f"/v1/{vault.kv2_mount}/data/{secret_path}"
    backend = open_backend(
        {"address": proxy.url, "auth": {"tokenFile": token_file(tmp_path, reader_token)}}
    )
    proxy.fail(503, method="GET", path=exact(data_path), times=1)

    with pytest.raises(base.Unavailable) as caught:
        backend.fetch(ref(secret_path))
    payload = backend.fetch(ref(secret_path))

    assert "503" in str(caught.value)
    assert_clean(caught.value, reader_token)
    assert dict(payload.data)["password"] == SENTINEL
    assert proxy.count(method="GET", path=exact(data_path)) == 2  # no hidden retry


def test_connection_reset_is_unavailable(
    vault: Any, open_backend: Any, fault_proxy: Any, secret_path: str, reader_token: str,
    tmp_path: Path,
) -> None:
    proxy = fault_proxy(vault.addr)
    backend = open_backend(
        {"address": proxy.url, "auth": {"tokenFile": token_file(tmp_path, reader_token)}}
    )
    backend.fetch(ref(secret_path))
    proxy.reset(method="GET", path=exact(f"/v1/{vault.kv2_mount}/data/{secret_path}"), times=1)

    with pytest.raises(base.Unavailable) as caught:
        backend.fetch(ref(secret_path))

    assert_clean(caught.value, reader_token)


def test_each_fetch_is_exactly_one_get_of_the_kv2_data_path(
    vault: Any, open_backend: Any, fault_proxy: Any, secret_path: str, reader_token: str,
    tmp_path: Path,
) -> None:
    proxy = fault_proxy(vault.addr)
    backend = open_backend(
        {"address": proxy.url, "auth": {"tokenFile": token_file(tmp_path, reader_token)}}
    )

    for _ in range(5):
        backend.fetch(ref(secret_path))

    assert proxy.count(method="GET", path=exact(f"/v1/{vault.kv2_mount}/data/{secret_path}")) == 5
    assert proxy.count(path=exact("/v1/auth/token/lookup-self")) == 1  # learns the TTL once
    assert proxy.count() == 6


# -- token auth ------------------------------------------------------------------------------


def test_token_and_address_from_the_environment(
    vault: Any, secret_path: str, reader_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", vault.addr)
    monkeypatch.setenv("VAULT_TOKEN", reader_token)
    backend = vault_backend.PLUGIN.factory("from-env", vault_backend.VaultSettings())
    try:
        assert dict(backend.fetch(ref(secret_path)).data)["username"] == "robot"
    finally:
        backend.close()


def test_repr_of_backend_and_lease_never_shows_the_token(
    vault: Any, open_backend: Any, secret_path: str, reader_token: str, tmp_path: Path
) -> None:
    backend = open_backend(
        {"address": vault.addr, "auth": {"tokenFile": token_file(tmp_path, reader_token)}}
    )
    backend.fetch(ref(secret_path))

    assert reader_token not in repr(backend)
    assert reader_token not in repr(backend._lease)


def test_renewable_token_is_renewed_once_less_than_a_third_of_its_ttl_is_left(
    vault: Any, open_backend: Any, fault_proxy: Any, secret_path: str, unique: str,
    tmp_path: Path,
) -> None:
    policy = reader_policy(vault, f"renew-{unique}", f"{vault.kv2_mount}/data/{secret_path}")
    token = create_token(vault, policies=[policy], ttl="1h")
    proxy = fault_proxy(vault.addr)
    clock = FakeClock()
    backend = open_backend(
        {"address": proxy.url, "auth": {"tokenFile": token_file(tmp_path, token)}}, clock=clock
    )
    renew_path = "/v1/auth/token/renew-self"

    backend.fetch(ref(secret_path))
    clock.advance(2000)  # 1600 s of 3600 left: more than a third
    backend.fetch(ref(secret_path))
    renewed_early = proxy.count(path=exact(renew_path))
    clock.advance(500)  # 1100 s left: less than a third
    backend.fetch(ref(secret_path))
    backend.fetch(ref(secret_path))  # the renewal reset the TTL: no second renewal

    assert renewed_early == 0
    assert proxy.count(method="POST", path=exact(renew_path)) == 1


def test_root_token_without_ttl_is_never_renewed(
    vault: Any, open_backend: Any, fault_proxy: Any, secret_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    proxy = fault_proxy(vault.addr)
    clock = FakeClock()
    backend = open_backend({"address": proxy.url}, clock=clock)

    backend.fetch(ref(secret_path))
    clock.advance(10 * 365 * 86400)
    backend.fetch(ref(secret_path))

    assert proxy.count(path=exact("/v1/auth/token/renew-self")) == 0


def test_check_verifies_the_token_without_reading_a_secret(
    vault: Any, open_backend: Any, fault_proxy: Any, reader_token: str, tmp_path: Path
) -> None:
    proxy = fault_proxy(vault.addr)
    good = open_backend(
        {"address": proxy.url, "auth": {"tokenFile": token_file(tmp_path, reader_token)}}
    )
    bad = open_backend(
        {"address": proxy.url, "auth": {"tokenFile": token_file(tmp_path, "hvs.bogus", "bad")}}
    )

    good.check()
    with pytest.raises(base.AccessDenied) as caught:
        bad.check()

    assert proxy.count(path=exact("/v1/auth/token/lookup-self")) == 2
    assert proxy.count() == 2
    assert_clean(caught.value, "hvs.bogus")


def test_unreadable_token_file_is_access_denied_naming_the_file(
    vault: Any, open_backend: Any, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-token")
    backend = open_backend({"address": vault.addr, "auth": {"tokenFile": missing}})

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref("registries/anything"))

    assert missing in str(caught.value)


# -- AppRole ---------------------------------------------------------------------------------


@pytest.fixture
def approle(vault: Any, unique: str, secret_path: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A private AppRole mount with a role that may read ``secret_path``; its auth settings."""
    client = vault.client()
    mount = f"approle-{unique}"
    client.sys.enable_auth_method("approle", path=mount)
    policy = reader_policy(vault, f"approle-{unique}", f"{vault.kv2_mount}/data/{secret_path}")
    client.auth.approle.create_or_update_approle(
        role_name="puller", token_policies=[policy], token_ttl="1h", mount_point=mount
    )
    role_id = client.auth.approle.read_role_id("puller", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("puller", mount_point=mount)["data"][
        "secret_id"
    ]
    auth = {
        "method": "approle",
        "roleId": role_id,
        "secretIdFile": token_file(tmp_path, secret_id, "secret-id"),
        "mount": mount,
    }
    yield {"auth": auth, "mount": mount, "secret_id": secret_id}
    client.sys.disable_auth_method(path=mount)


def test_approle_login_reads_the_secret(
    vault: Any, open_backend: Any, fault_proxy: Any, approle: dict[str, Any], secret_path: str
) -> None:
    proxy = fault_proxy(vault.addr)
    backend = open_backend({"address": proxy.url, "auth": approle["auth"]})

    first = backend.fetch(ref(secret_path))
    backend.fetch(ref(secret_path))

    assert dict(first.data)["password"] == SENTINEL
    assert proxy.count(method="POST", path=exact(f"/v1/auth/{approle['mount']}/login")) == 1


def test_approle_logs_in_again_after_its_tokens_are_revoked(
    vault: Any, open_backend: Any, fault_proxy: Any, approle: dict[str, Any], secret_path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = fault_proxy(vault.addr)
    backend = open_backend({"address": proxy.url, "auth": approle["auth"]})
    backend.fetch(ref(secret_path))

    vault.client().sys.revoke_prefix(f"auth/{approle['mount']}/login")
    payload = backend.fetch(ref(secret_path))

    assert dict(payload.data)["password"] == SENTINEL
    assert proxy.count(method="POST", path=exact(f"/v1/auth/{approle['mount']}/login")) == 2
    # one denied read, then one read with the new token
    assert proxy.count(method="GET", path=exact(f"/v1/{vault.kv2_mount}/data/{secret_path}")) == 3
    logged = " ".join(str(record.__dict__) for record in caplog.records)
    assert "logged in" in logged
    assert "SENTINEL" not in logged
    assert approle["secret_id"] not in logged


def test_approle_denied_by_policy_retries_once_then_is_access_denied(
    vault: Any, open_backend: Any, fault_proxy: Any, approle: dict[str, Any], unique: str
) -> None:
    forbidden = f"registries/elsewhere-{unique}"
    write_kv2(vault, forbidden, {"password": SENTINEL})
    proxy = fault_proxy(vault.addr)
    backend = open_backend({"address": proxy.url, "auth": approle["auth"]})

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref(forbidden))

    assert proxy.count(method="POST", path=exact(f"/v1/auth/{approle['mount']}/login")) == 2
    assert proxy.count(method="GET", path=exact(f"/v1/{vault.kv2_mount}/data/{forbidden}")) == 2
    assert_clean(caught.value, approle["secret_id"])


def test_approle_logs_in_again_when_renewal_fails(
    vault: Any, open_backend: Any, fault_proxy: Any, approle: dict[str, Any], secret_path: str
) -> None:
    proxy = fault_proxy(vault.addr)
    clock = FakeClock()
    backend = open_backend({"address": proxy.url, "auth": approle["auth"]}, clock=clock)
    backend.fetch(ref(secret_path))
    vault.client().sys.revoke_prefix(f"auth/{approle['mount']}/login")

    clock.advance(3000)  # inside the renewal window: renew-self fails with 403
    payload = backend.fetch(ref(secret_path))

    assert dict(payload.data)["username"] == "robot"
    assert proxy.count(path=exact("/v1/auth/token/renew-self")) == 1
    assert proxy.count(method="POST", path=exact(f"/v1/auth/{approle['mount']}/login")) == 2
    assert proxy.count(method="GET", path=exact(f"/v1/{vault.kv2_mount}/data/{secret_path}")) == 2


def test_approle_with_a_wrong_secret_id_is_access_denied(
    vault: Any, open_backend: Any, approle: dict[str, Any], secret_path: str, tmp_path: Path
) -> None:
    wrong = "00000000-SENTINEL-0000-0000-000000000000"
    auth = {**approle["auth"], "secretIdFile": token_file(tmp_path, wrong, "wrong-secret-id")}
    backend = open_backend({"address": vault.addr, "auth": auth})

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref(secret_path))

    assert approle["mount"] in str(caught.value)
    assert_clean(caught.value, wrong, approle["secret_id"])


def test_concurrent_fetches_share_one_login(
    vault: Any, open_backend: Any, fault_proxy: Any, approle: dict[str, Any], secret_path: str
) -> None:
    proxy = fault_proxy(vault.addr)
    backend = open_backend({"address": proxy.url, "auth": approle["auth"]})
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            backend.fetch(ref(secret_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert proxy.count(method="POST", path=exact(f"/v1/auth/{approle['mount']}/login")) == 1
    assert proxy.count(method="GET", path=exact(f"/v1/{vault.kv2_mount}/data/{secret_path}")) == 8


def test_approle_check_logs_in_without_reading(
    vault: Any, open_backend: Any, fault_proxy: Any, approle: dict[str, Any]
) -> None:
    proxy = fault_proxy(vault.addr)
    backend = open_backend({"address": proxy.url, "auth": approle["auth"]})

    backend.check()

    assert proxy.count(method="POST", path=exact(f"/v1/auth/{approle['mount']}/login")) == 1
    assert proxy.count() == 1


# -- Kubernetes auth -------------------------------------------------------------------------


@pytest.fixture
def k8s_identity(kube: Any, unique: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Makes ServiceAccounts in a fresh namespace; returns a function giving a JWT file for one."""
    from kubernetes import client as k8s

    core = kube.core()
    namespace = f"pss-backends-{unique}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))

    def jwt_file(service_account: str) -> str:
        core.create_namespaced_service_account(
            namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=service_account))
        )
        request = core.create_namespaced_service_account_token(
            service_account,
            namespace,
            k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[])),
        )
        return token_file(tmp_path, request.status.token, f"jwt-{service_account}")

    jwt_file.namespace = namespace  # type: ignore[attr-defined]
    yield jwt_file
    core.delete_namespace(namespace)


def test_kubernetes_login_with_a_serviceaccount_token(
    vault: Any, vault_kubernetes_auth: Any, k8s_identity: Any, open_backend: Any,
    fault_proxy: Any, secret_path: str, unique: str,
) -> None:
    policy = reader_policy(vault, f"k8s-{unique}", f"{vault.kv2_mount}/data/{secret_path}")
    vault.client().auth.kubernetes.create_role(
        name=f"puller-{unique}",
        bound_service_account_names=["puller"],
        bound_service_account_namespaces=[k8s_identity.namespace],
        policies=[policy],
        ttl="1h",
        mount_point=vault.kubernetes_mount,
    )
    proxy = fault_proxy(vault.addr)
    auth = {"method": "kubernetes", "role": f"puller-{unique}", "jwtFile": k8s_identity("puller")}
    backend = open_backend({"address": proxy.url, "auth": auth})

    payload = backend.fetch(ref(secret_path))

    assert dict(payload.data)["password"] == SENTINEL
    assert proxy.count(method="POST", path=exact(f"/v1/auth/{vault.kubernetes_mount}/login")) == 1


def test_kubernetes_login_with_another_serviceaccount_is_access_denied(
    vault: Any, vault_kubernetes_auth: Any, k8s_identity: Any, open_backend: Any,
    secret_path: str, unique: str,
) -> None:
    vault.client().auth.kubernetes.create_role(
        name=f"puller-{unique}",
        bound_service_account_names=["puller"],
        bound_service_account_namespaces=[k8s_identity.namespace],
        policies=["default"],
        ttl="1h",
        mount_point=vault.kubernetes_mount,
    )
    jwt_path = k8s_identity("intruder")
    auth = {"method": "kubernetes", "role": f"puller-{unique}", "jwtFile": jwt_path}
    backend = open_backend({"address": vault.addr, "auth": auth})

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref(secret_path))

    assert "kubernetes login" in str(caught.value)
    assert_clean(caught.value, Path(jwt_path).read_text().strip())
