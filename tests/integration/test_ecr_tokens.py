"""ECR tokens end to end: the real CLI and daemon, moto's ECR (behind the token proxy of
tests/stack/ecrtokens.py that makes each token new and short-lived, as real ECR's are unique),
OpenBao and the real apiserver. One Secret merges an ECR token and a Vault credential; a renewal
rewrites exactly the N Secrets and nothing else; SIGHUP leaves a fresh token alone."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    CONVERGE,
    SENTINEL,
    Result,
    dockerconfig_of,
    read_secret,
    wait_for_sa,
)
from tests.integration.daemonproc import DaemonProcess, wait_until
from tests.stack import ecrtokens

HUB_PW = "hub-pw-SENTINEL-ecr"
OTHER = "210987654321"
ROLE_ARN = f"arn:aws:iam::{OTHER}:role/ecr-pull"
N = 4


@pytest.fixture
def tokens(aws: Any, leak_values: list[str]) -> Iterator[ecrtokens.EcrTokenProxy]:
    proxy = ecrtokens.EcrTokenProxy(aws.endpoint, marker=SENTINEL, lifetime=30.0).start()
    yield proxy
    leak_values.extend(proxy.secrets())
    proxy.stop()


def config(vault: Any, tokens: ecrtokens.EcrTokenProxy, unique: str, namespaces: list[str], *,
           role: bool = False) -> str:
    assume = f", assumeRoleArn: {ROLE_ARN!r}" if role else ""
    return f"""
version: 1
defaults: {{refreshInterval: 1h}}
backends:
  vault: {{type: vault, address: {vault.addr}, auth: {{method: token}}}}
  ecr: {{type: aws-ecr, region: us-east-1, endpointUrl: "{tokens.url}"{assume}}}
credentials:
  hub: {{backend: vault, path: pss/{unique}/hub, registry: docker.io}}
  prod: {{backend: ecr}}
mappings:
  - name: ecr
    namespaces: {{names: [{", ".join(namespaces)}]}}
    credentials: [prod, hub]
"""


def seed(vault: Any, unique: str, leak_values: list[str]) -> None:
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"pss/{unique}/hub", secret={"username": "hubuser", "password": HUB_PW},
        mount_point=vault.kv2_mount)
    leak_values.append(base64.b64encode(f"hubuser:{HUB_PW}".encode()).decode())


def test_sync_merges_an_ecr_token_of_an_assumed_role_with_a_vault_credential(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, vault: Any,
    aws: Any, unique: str, tokens: ecrtokens.EcrTokenProxy, leak_values: list[str],
    namespace_factory: Callable[..., str], stack_env: dict[str, str],
) -> None:
    seed(vault, unique, leak_values)
    ns = namespace_factory(prefix="ecr")
    wait_for_sa(core, ns)
    cfg = write_config(config(vault, tokens, unique, [ns], role=True))
    result = cli("sync", "--config", str(cfg))
    assert result.code == 0, result.output
    auths = dockerconfig_of(read_secret(core, ns, "regcred"))["auths"]
    host = f"{OTHER}.dkr.ecr.us-east-1.amazonaws.com"  # the assumed role's account
    assert sorted(auths) == sorted([host, "https://index.docker.io/v1/"])
    (issued,) = tokens.issued
    assert base64.b64decode(auths[host]["auth"]).decode() == f"AWS:{issued.password}"
    (call,) = tokens.token_calls()
    assert call.access_key_id is not None and call.access_key_id.startswith("ASIA")


def test_a_renewal_rewrites_exactly_the_n_secrets_and_sighup_leaves_a_fresh_token_alone(
    write_config: Callable[[str], Path], core: Any, kube: Any, vault: Any, aws: Any,
    unique: str, tokens: ecrtokens.EcrTokenProxy, leak_values: list[str],
    namespace_factory: Callable[..., str], fault_proxy: Callable[..., Any],
    start_daemon: Callable[..., DaemonProcess], stack_env: dict[str, str],
) -> None:
    seed(vault, unique, leak_values)
    namespaces = [namespace_factory(prefix="ecr") for _ in range(N)]
    for ns in namespaces:
        wait_for_sa(core, ns)
    proxy = fault_proxy(kube.server, upstream_ca=kube.ca_file)
    env = {**stack_env, "KUBECONFIG": str(kube.kubeconfig_via(proxy.url))}
    daemon = start_daemon(write_config(config(vault, tokens, unique, namespaces)), env=env)
    daemon.wait_ready()
    assert len(tokens.token_calls()) == 1
    first = {ns: read_secret(core, ns, "regcred") for ns in namespaces}
    expiry = daemon.metric("credential_expiry_timestamp_seconds", credential="prod")
    assert expiry == pytest.approx(tokens.issued[0].expires_at)

    daemon.signal(signal.SIGHUP)  # refreshes the Vault credential, not the fresh token
    time.sleep(3)
    assert len(tokens.token_calls()) == 1
    proxy.reset_counts()

    # 30 s tokens: renewal is due after half their life, minus up to 10 % jitter
    wait_until(lambda: len(tokens.token_calls()) >= 2, timeout=30, what="the token renewal")
    wait_until(lambda: all(read_secret(core, ns, "regcred").metadata.resource_version
                           != first[ns].metadata.resource_version for ns in namespaces),
               timeout=CONVERGE, what="every Secret rewritten")
    time.sleep(1)
    writes = [(r.method, r.path.rsplit("/", 3)[-2]) for r in proxy.requests
              if r.method in ("POST", "PUT", "PATCH", "DELETE") and "/events" not in r.path]
    assert writes == [("PATCH", "secrets")] * N  # the N Secrets, nothing else
    for ns in namespaces:
        now = read_secret(core, ns, "regcred")
        assert now.metadata.uid == first[ns].metadata.uid  # in place
        host_auth = [v["auth"] for k, v in dockerconfig_of(now)["auths"].items()
                     if k.endswith("amazonaws.com")]
        assert base64.b64decode(host_auth[0]).decode() == f"AWS:{tokens.issued[1].password}"
    assert len(tokens.token_calls()) == 2
