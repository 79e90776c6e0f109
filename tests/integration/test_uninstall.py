"""`uninstall` end to end on the real stack: after a sync of 20 namespaces whose ServiceAccounts
also carry another writer's entries, it removes exactly what we wrote — ours out of every
ServiceAccount, then our Secrets — leaves everything else byte-identical, and does nothing the
second time. `--dry-run` writes nothing (counted in the apiserver's audit log)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import FOREIGN_ENTRIES, Result, add_foreign_entries
from tests.integration.test_sync import config_text, seeded  # noqa: F401 - seeded: a fixture

N = 20
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def audit_writes_since(kube: Any, offset: int) -> list[str]:
    """Writes the CLI (as admin) made after byte `offset` of the audit log. The stack's
    controller-manager authenticates as admin too (its namespace deletions of other tests'
    namespaces land here): its requests are told apart by their user agent."""
    with kube.audit_log.open("rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    return [f"{e['verb']} {e['objectRef'].get('resource')}" for e in events
            if e.get("verb") in WRITES and e.get("user", {}).get("username") == "admin"
            and not str(e.get("userAgent", "")).startswith("kube-controller-manager")]


def test_uninstall_removes_only_what_we_wrote_and_a_second_run_does_nothing(
    cli: Callable[..., Result], write_config: Callable[[str], Path], core: Any, kube: Any,
    vault: Any, aws: Any, unique: str, seeded: dict[str, str],  # noqa: F811 - the fixture
    namespace_factory: Callable[..., str],
) -> None:
    if kube.audit_log is None:
        pytest.skip("needs the stack's own apiserver (audit log), not PSS_KUBECONFIG")
    namespaces = [namespace_factory(labels={"pss-un": unique}, prefix="un") for _ in range(N)]
    for ns in namespaces:
        add_foreign_entries(core, ns)
        core.create_namespaced_secret(ns, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name="theirs"), string_data={"token": "not ours"}))
    cfg = write_config(config_text(vault, aws, unique, f"""
  - name: un
    namespaces: {{selector: {{matchLabels: {{pss-un: "{unique}"}}}}}}
    credentials: [hub, ghcr]
"""))
    synced = cli("sync", "--config", str(cfg))
    assert synced.code == 0, synced.output
    foreign = {ns: core.read_namespaced_secret("theirs", ns) for ns in namespaces}

    mark = kube.audit_log.stat().st_size
    dry = cli("uninstall", "--dry-run")
    assert dry.code == 0, dry.output
    for ns in namespaces:
        assert f"unpatch serviceaccount {ns}/default -regcred" in dry.stdout.splitlines()
        assert f"delete secret {ns}/regcred (hub, ghcr)" in dry.stdout.splitlines()
    lines = dry.stdout.splitlines()
    first_delete = next(i for i, line in enumerate(lines) if line.startswith("delete "))
    assert all(line.startswith("unpatch ") for line in lines[:first_delete])  # SAs first
    assert audit_writes_since(kube, mark) == []
    assert core.read_namespaced_secret("regcred", namespaces[0])  # still there

    removed = cli("uninstall")
    assert removed.code == 0, removed.output
    for ns in namespaces:
        sa = core.read_namespaced_service_account("default", ns)
        assert [r.name for r in sa.image_pull_secrets] == FOREIGN_ENTRIES
        assert "pullsecret-syncer.io/image-pull-secrets" not in (sa.metadata.annotations or {})
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_secret("regcred", ns)
        assert gone.value.status == 404
        kept = core.read_namespaced_secret("theirs", ns)
        assert (kept.data, kept.metadata.resource_version) == (
            foreign[ns].data, foreign[ns].metadata.resource_version)

    mark = kube.audit_log.stat().st_size
    again = cli("uninstall")
    assert again.code == 0, again.output
    assert not any(ns in again.stdout for ns in namespaces)
    assert audit_writes_since(kube, mark) == []
