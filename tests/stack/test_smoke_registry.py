"""Smoke tests proving the registry of the stack is a real registry with real auth, and that
skopeo, the real client, can push to it and read from it with a `.dockerconfigjson`."""

from __future__ import annotations

import base64
import json

import requests

from stack import skopeo, wait

USER, PASSWORD = "alice", "pw-SENTINEL-smoke"


def _dockerconfig(key: str, user: str, password: str) -> bytes:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {key: {"username": user, "password": password, "auth": auth}}},
                      sort_keys=True).encode()


def _bearer_challenge(header: str) -> dict[str, str]:
    scheme, _, params = header.partition(" ")
    assert scheme == "Bearer", header
    return dict(part.split("=", 1) for part in params.replace('"', "").split(","))


def test_htpasswd_registry_accepts_its_user_and_refuses_a_wrong_password(registry_factory):
    registry = registry_factory(users={USER: PASSWORD})

    anonymous = requests.get(f"{registry.url}/v2/", timeout=5)
    good = requests.get(f"{registry.url}/v2/", auth=(USER, PASSWORD), timeout=5)
    bad = requests.get(f"{registry.url}/v2/", auth=(USER, "wrong"), timeout=5)

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
    assert (good.status_code, bad.status_code) == (200, 401)
    assert wait.eventually("3 requests in the access log",
                           lambda: registry.count(path="^/v2/$") == 3, timeout=5)
    assert [r.status for r in registry.access_log()] == [401, 200, 401]


def test_password_change_is_read_after_the_restart(registry_factory):
    registry = registry_factory(users={USER: PASSWORD})

    registry.set_users({USER: "pw-SENTINEL-new"})

    assert requests.get(f"{registry.url}/v2/", auth=(USER, PASSWORD), timeout=5).status_code == 401
    assert requests.get(f"{registry.url}/v2/", auth=(USER, "pw-SENTINEL-new"),
                        timeout=5).status_code == 200


def test_tls_registry_is_trusted_only_with_the_session_ca(registry_factory):
    registry = registry_factory(users={USER: PASSWORD}, tls=True)

    answer = requests.get(f"{registry.url}/v2/", auth=(USER, PASSWORD), timeout=5,
                          verify=str(registry.ca_file))

    assert registry.url.startswith("https://")
    assert answer.status_code == 200
    try:
        requests.get(f"{registry.url}/v2/", timeout=5)
    except requests.exceptions.SSLError:
        pass
    else:
        raise AssertionError("the registry's certificate was trusted without the session CA")


def test_token_mode_registry_accepts_only_tokens_of_its_token_server(registry_factory):
    registry = registry_factory(auth="token", users={USER: PASSWORD})

    first = requests.get(f"{registry.url}/v2/", timeout=5)
    challenge = _bearer_challenge(first.headers["WWW-Authenticate"])
    issued = requests.get(challenge["realm"], auth=(USER, PASSWORD), timeout=5,
                          params={"service": challenge["service"], "account": USER})
    refused = requests.get(challenge["realm"], auth=(USER, "wrong"), timeout=5,
                           params={"service": challenge["service"], "account": USER})
    token = issued.json()["token"]
    with_token = requests.get(f"{registry.url}/v2/", timeout=5,
                              headers={"Authorization": f"Bearer {token}"})
    header, claims, signature = token.split(".")
    forged = requests.get(f"{registry.url}/v2/", timeout=5,
                          headers={"Authorization": f"Bearer {header}.{claims}.{signature[::-1]}"})

    assert first.status_code == 401
    assert (issued.status_code, refused.status_code) == (200, 401)
    assert set(issued.json()) == {"token", "access_token", "expires_in", "issued_at"}
    assert with_token.status_code == 200
    assert forged.status_code == 401


def test_token_server_users_change_without_restart(token_server_factory):
    server = token_server_factory(users={USER: PASSWORD})
    params = {"service": "pss-test-registry", "account": USER}

    before = requests.get(server.realm, auth=(USER, PASSWORD), params=params, timeout=5)
    server.set_users({USER: "pw-SENTINEL-rotated"})
    after = requests.get(server.realm, auth=(USER, PASSWORD), params=params, timeout=5)

    assert (before.status_code, after.status_code) == (200, 401)
    assert [(r.account, r.authorization, r.status) for r in server.requests] == [
        (USER, True, 200), (USER, True, 401)]


def test_skopeo_pushes_and_reads_back_with_a_dockerconfigjson(registry_factory, tmp_path):
    registry = registry_factory(users={USER: PASSWORD})
    layout = skopeo.make_image(tmp_path / "image")

    skopeo.push(layout, registry.ref("smoke/hello"), username=USER, password=PASSWORD)
    good = skopeo.inspect(_dockerconfig(registry.key, USER, PASSWORD), registry.ref("smoke/hello"),
                          tls_verify=False)
    bad = skopeo.inspect(_dockerconfig(registry.key, USER, "wrong"), registry.ref("smoke/hello"),
                         tls_verify=False)

    assert good.returncode == 0, good.stderr
    assert good.digest is not None and good.digest.startswith("sha256:")
    assert bad.returncode != 0
    assert PASSWORD not in good.stdout + good.stderr + bad.stdout + bad.stderr


def test_skopeo_uses_the_auth_field_alone(registry_factory, tmp_path):
    registry = registry_factory(users={USER: PASSWORD})
    skopeo.push(skopeo.make_image(tmp_path / "image"), registry.ref("smoke/auth"), username=USER,
                password=PASSWORD)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    only_auth = json.dumps({"auths": {registry.key: {"auth": auth}}}).encode()
    wrong_fields = json.dumps({"auths": {registry.key: {
        "auth": auth, "username": USER, "password": "wrong"}}}).encode()

    assert skopeo.inspect(only_auth, registry.ref("smoke/auth"), tls_verify=False).returncode == 0
    assert skopeo.inspect(wrong_fields, registry.ref("smoke/auth"),
                          tls_verify=False).returncode == 0


def test_skopeo_over_tls_and_through_a_token_server(registry_factory, tmp_path):
    registry = registry_factory(auth="token", users={USER: PASSWORD}, tls=True)
    certs = skopeo.ca_dir(registry.ca_file, tmp_path / "certs")

    skopeo.push(skopeo.make_image(tmp_path / "image"), registry.ref("smoke/token"),
                username=USER, password=PASSWORD, tls_verify=True, cert_dir=certs)
    good = skopeo.inspect(_dockerconfig(registry.key, USER, PASSWORD),
                          registry.ref("smoke/token"), tls_verify=True, ca_dir=certs)
    bad = skopeo.inspect(_dockerconfig(registry.key, USER, "wrong"),
                         registry.ref("smoke/token"), tls_verify=True, ca_dir=certs)

    assert good.returncode == 0, good.stderr
    assert bad.returncode != 0
