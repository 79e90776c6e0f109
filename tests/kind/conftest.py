"""The kind layer (`make test-kind`): a real kind cluster on this machine, a dev Vault, a private
registry, the syncer installed as users install it, and kubelets pulling with the Secrets it
writes. It runs only when named (`pytest tests/kind`), never inside `make test`: one session brings
the environment up (deploy/kind/dev-up.sh, minutes), the tests run in file order against it, and
test_zz_down.py takes it down and checks that the host is as it was.

Where Docker cannot run, every test skips with the reason, or — with PSS_REQUIRE_STACK=1, as in
CI — fails.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.kind import cluster

_HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect tests/kind only when the command line names it (or a file in it)."""
    if _HERE not in (collection_path, *collection_path.parents):
        return None
    for arg in config.args:
        target = Path(arg.split("::")[0]).resolve()
        if target == _HERE or _HERE in target.parents:
            return None
    return True


@dataclass
class KindEnv:
    up: cluster.Run
    sysctls_before: dict[str, str]
    timings: list[tuple[str, float]] = field(default_factory=list)


def _docker_unavailable_reason() -> str | None:
    proc = subprocess.run(
        ["bash", str(cluster.REPO / "tests" / "stack" / "docker.sh"), "status"],
        capture_output=True, text=True, check=False,
    )
    return None if proc.returncode == 0 else (proc.stdout + proc.stderr).strip()


@pytest.fixture(scope="session")
def kind_env() -> Iterator[KindEnv]:
    reason = _docker_unavailable_reason()
    if reason:
        if os.environ.get("PSS_REQUIRE_STACK") == "1":
            pytest.fail(f"kind tests required (PSS_REQUIRE_STACK=1) but {reason}", pytrace=False)
        pytest.skip(
            f"kind tests need a Docker engine: {reason} (set PSS_REQUIRE_STACK=1 to fail instead)"
        )
    before = cluster.sysctls()
    # start from nothing: a cluster left by an interrupted run would make the host check meaningless
    down = cluster.script("dev-down.sh")
    assert down.returncode == 0, down.output
    up = cluster.script("dev-up.sh")
    env = KindEnv(up=up, sysctls_before=before)
    print(f"\n--- deploy/kind/dev-up.sh ({up.seconds:.0f} s) ---\n{up.output}")
    assert up.returncode == 0, f"dev-up.sh failed:\n{up.output[-6000:]}"
    yield env
