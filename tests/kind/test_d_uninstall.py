"""`helm uninstall` runs the chart's cleanup hook: no Secret and no ServiceAccount entry of ours
is left anywhere."""

from __future__ import annotations

import subprocess

from tests.kind import cluster
from tests.kind.conftest import KindEnv

ANNOTATION = "pullsecret-syncer.io/image-pull-secrets"


def helm() -> str:
    out = subprocess.run(
        ["bash", str(cluster.REPO / "tests" / "stack" / "build-helm.sh")],
        capture_output=True, text=True, check=True,
    ).stdout
    (line,) = [x for x in out.splitlines() if x.startswith("helm: cache ")]
    return line.removeprefix("helm: cache ").strip() + "/helm"


def ours_left() -> list[str]:
    left = [
        f"secret {s['metadata']['namespace']}/{s['metadata']['name']}"
        for s in cluster.get("secrets", "-A", "-l", cluster.MANAGED_BY)["items"]
    ]
    for sa in cluster.get("serviceaccounts", "-A")["items"]:
        names = [r["name"] for r in sa.get("imagePullSecrets") or []]
        if cluster.SECRET in names or ANNOTATION in (sa["metadata"].get("annotations") or {}):
            left.append(f"serviceaccount {sa['metadata']['namespace']}/{sa['metadata']['name']}")
    return left


def test_helm_uninstall_leaves_nothing_of_ours(kind_env: KindEnv) -> None:
    assert ours_left(), "nothing to clean up: the earlier tests should have left Secrets"
    proc = subprocess.run(
        [helm(), "uninstall", "pullsecret-syncer", "--kube-context", cluster.CONTEXT,
         "--namespace", cluster.SYNCER_NS, "--wait", "--timeout", "180s"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ours_left() == []
    # the hook cleaned up after itself too
    left = cluster.kubectl("-n", cluster.SYNCER_NS, "get", "jobs,serviceaccounts", "-o", "name")
    assert "cleanup" not in left
