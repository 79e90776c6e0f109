"""`verify` end to end: the real daemon, OpenBao, the real apiserver and the real CNCF registry
(htpasswd over plain HTTP), with skopeo proving that what was published works.

One login check per new value, whatever the namespace count and however often the unchanged
value is re-read (counted in the registry's own access log); a rejected value is never published
and the old Secret stays byte-identical and usable; an unreachable registry publishes anyway."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import CONVERGE, read_secret, wait_for_sa
from tests.integration.daemonproc import DaemonProcess, wait_until
from tests.stack import skopeo

USER = "reg-user"
GOOD, BAD, NEWER, LATER = ("good-SENTINEL-v1", "typo-SENTINEL-v2", "new-SENTINEL-v3",
                           "later-SENTINEL-v4")
N = 3


def put(vault: Any, unique: str, password: str, leak_values: list[str]) -> None:
    leak_values.extend([password, base64.b64encode(f"{USER}:{password}".encode()).decode()])
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=f"pss/{unique}/reg", secret={"username": USER, "password": password},
        mount_point=vault.kv2_mount)


def data(core: Any, ns: str) -> bytes:
    return base64.b64decode(read_secret(core, ns, "regcred").data[".dockerconfigjson"])


def checks(registry: Any) -> int:
    """Our `docker login` checks seen by the registry (each Basic check is two GETs of /v2/;
    skopeo's own requests carry another User-Agent)."""
    return registry.count(path="^/v2/$", agent="pullsecret-syncer/") // 2


def test_verify_publishes_good_values_keeps_rejected_ones_out_and_checks_once_per_value(
    vault: Any, core: Any, unique: str, tmp_path: Path, leak_values: list[str],
    write_config: Callable[[str], Path], namespace_factory: Callable[..., str],
    registry_factory: Callable[..., Any], start_daemon: Callable[..., DaemonProcess],
) -> None:
    registry = registry_factory(auth="htpasswd", users={USER: GOOD})
    image = registry.ref("pss/app")
    skopeo.push(skopeo.make_image(tmp_path / "img"), image, username=USER, password=GOOD)
    put(vault, unique, GOOD, leak_values)
    namespaces = [namespace_factory(prefix="verify") for _ in range(N)]
    for ns in namespaces:
        wait_for_sa(core, ns)
    registry.reset_counts()
    daemon = start_daemon(write_config(f"""
version: 1
defaults: {{refreshInterval: 1s}}
backends:
  vault: {{type: vault, address: {vault.addr}, auth: {{method: token}}}}
credentials:
  reg:
    backend: vault
    path: pss/{unique}/reg
    registry: {registry.key}
    verify: {{plainHttp: true}}
mappings:
  - name: verified
    namespaces: {{names: [{", ".join(namespaces)}]}}
    credentials: [reg]
"""))
    daemon.wait_ready()

    # a good first value: checked once, published everywhere, usable by a real client
    assert skopeo.inspect(data(core, namespaces[0]), image, tls_verify=False).returncode == 0
    wait_until(lambda: daemon.metric("credential_fetch_total", credential="reg",
                                     result="success") >= 4, timeout=CONVERGE, what="re-reads")
    assert checks(registry) == 1  # not per namespace, not per re-read of the same value
    assert daemon.metric("credential_verify_total", credential="reg", result="ok") == 1

    # a typo rotated into Vault: rejected, nothing published, the old Secret still works
    before = {ns: read_secret(core, ns, "regcred") for ns in namespaces}
    put(vault, unique, BAD, leak_values)
    wait_until(lambda: daemon.metric("credential_verify_total", credential="reg",
                                     result="rejected") == 1, timeout=CONVERGE, what="rejection")
    wait_until(lambda: daemon.metric("credential_up", credential="reg") == 0, timeout=CONVERGE,
               what="credential down")
    reads = daemon.metric("credential_fetch_total", credential="reg", result="error") or 0
    wait_until(lambda: (daemon.metric("credential_fetch_total", credential="reg",
                                      result="error") or 0) >= reads + 3,
               timeout=CONVERGE, what="more re-reads of the rejected value")
    assert checks(registry) == 2  # the rejected value is not checked again
    for ns in namespaces:
        now = read_secret(core, ns, "regcred")
        assert (now.data, now.metadata.resource_version) == (
            before[ns].data, before[ns].metadata.resource_version)
    assert skopeo.inspect(data(core, namespaces[0]), image, tls_verify=False).returncode == 0
    assert any("rejected" in str(r.get("msg")) and r.get("registry") == registry.key
               for r in daemon.log_records())

    # the registry's password really changes, and so does Vault: accepted, published, up again
    registry.set_users({USER: NEWER})
    put(vault, unique, NEWER, leak_values)
    old = {ns: base64.b64decode(before[ns].data[".dockerconfigjson"]) for ns in namespaces}
    wait_until(lambda: all(data(core, ns) != old[ns] for ns in namespaces),
               timeout=CONVERGE, what="the new value published")
    wait_until(lambda: daemon.metric("credential_up", credential="reg") == 1,
               timeout=CONVERGE, what="credential up again")
    assert skopeo.inspect(data(core, namespaces[-1]), image, tls_verify=False).returncode == 0
    assert daemon.metric("credential_verify_total", credential="reg", result="ok") == 2

    # the registry is down: a new value cannot be checked, so it is published with a warning
    registry.stop()
    after_newer = data(core, namespaces[0])
    put(vault, unique, LATER, leak_values)
    wait_until(lambda: daemon.metric("credential_verify_total", credential="reg",
                                     result="unreachable") == 1, timeout=CONVERGE,
               what="an unreachable check")
    wait_until(lambda: data(core, namespaces[0]) != after_newer, timeout=CONVERGE,
               what="published despite the registry being down")
    assert daemon.metric("credential_up", credential="reg") == 1
