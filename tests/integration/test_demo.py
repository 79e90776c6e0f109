"""`make demo` (deploy/demo/demo.py) end to end: it starts its own real stack, narrates what the
daemon did, never prints a credential value, and leaves no process or directory behind — also
when interrupted with Ctrl-C."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import SENTINEL
from tests.stack import product

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "deploy" / "demo" / "demo.py"
NAMESPACES = ("demo-a", "demo-b", "team-x")
STACK_MISSING = "error: the local stack did not start"


@pytest.fixture
def marker() -> Iterator[str]:
    """An environment value every process the demo starts inherits: finds leftovers."""
    value = f"pss-demo-test-{secrets.token_hex(6)}"
    yield value
    for pid in processes_with(value):  # never leave one behind, even when a test failed
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def processes_with(marker: str) -> list[int]:
    found = []
    needle = f"DEMO_TEST_MARKER={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def demo_env(marker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KUBERNETES_SERVICE_", "VAULT_", "AWS_", "PSS_"))}
    env.update({"PSS_DEMO_SENTINEL": "1", "DEMO_TEST_MARKER": marker, "PYTHONUNBUFFERED": "1",
                # the daemon the demo starts is the installed product, not the checkout
                "PSS_SYNCER": str(product.installed().script)})
    return env


def skip_or_fail_without_stack(output: str) -> None:
    if STACK_MISSING in output:
        if os.environ.get("PSS_REQUIRE_STACK") == "1":
            pytest.fail(f"test stack required (PSS_REQUIRE_STACK=1):\n{output}", pytrace=False)
        pytest.skip("the demo's stack is unavailable here (run `make setup`)")


def runtime_dir(stdout: str) -> Path:
    match = re.search(r"; logs in (/\S+)$", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match.group(1))


def test_demo_narrates_sync_and_rotation_without_printing_a_credential_and_cleans_up(
    marker: str,
) -> None:
    proc = subprocess.run([sys.executable, str(DEMO)], env=demo_env(marker), cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    skip_or_fail_without_stack(output)
    assert proc.returncode == 0, output
    assert SENTINEL not in output, "a seeded credential value was printed"
    lines = proc.stdout.splitlines()

    def line(pattern: str) -> re.Match[str]:
        found = [m for m in map(re.compile(pattern).search, lines) if m]
        assert len(found) == 1, f"{pattern!r} expected once in:\n{proc.stdout}"
        return found[0]

    for ns in NAMESPACES:
        line(rf"Secret {ns}/regcred written: registries ghcr.io, https://index.docker.io/v1/ "
             r"\(credentials dockerhub,ghcr\)$")
        line(rf"ServiceAccount {ns}/default patched: imagePullSecrets \[regcred\]$")
    line(r"namespace other: left alone")
    line(r"rotation arrived: Secrets in demo-a, demo-b, team-x rewritten [\d.]+s after the "
         r"write; the ghcr entry is unchanged$")
    line(r"stopped the daemon with SIGTERM: exit 143$")
    reads = line(r"backend reads: dockerhub (\d+) \(Vault\), ghcr (\d+) \(AWS")
    assert int(reads[1]) >= 2 and int(reads[2]) >= 1  # the first read and the rotation
    line(r"Kubernetes writes for the 3 new namespaces: .*POST secrets 3$")
    line(r"Kubernetes writes for the rotation: PATCH secrets 3$")
    gets = line(r"Kubernetes reads: \d+ LIST, 3 WATCH; (.*)$")[1]
    # Re-reads of a ServiceAccount that lost a race are fine; a GET per namespace is not.
    assert gets == "no per-namespace GETs" or re.fullmatch(
        r"\d+ single-object GETs \(serviceaccounts \d+\): .*", gets), gets
    line(r"leak check: none of the 6 password/auth values is in the daemon's log")
    assert lines[-1].endswith("stopped everything the demo started"), proc.stdout
    assert not runtime_dir(proc.stdout).exists()
    assert processes_with(marker) == []


def test_ctrl_c_stops_everything_the_demo_started(marker: str) -> None:
    proc = subprocess.Popen([sys.executable, str(DEMO)], env=demo_env(marker), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for text in proc.stdout:
            seen.append(text)
            if "daemon ready" in text:
                assert processes_with(marker), "nothing running with the marker: test is blind"
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    skip_or_fail_without_stack(output)
    assert proc.returncode == 130, output
    assert "interrupted (SIGINT): stopping everything" in output
    assert output.rstrip().endswith("stopped everything the demo started"), output
    assert SENTINEL not in output
    assert not runtime_dir(output).exists()
    assert processes_with(marker) == []
