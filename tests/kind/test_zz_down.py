"""`make dev-down` leaves nothing behind, and the whole up/down cycle left the host's kernel
settings as they were (the node must never write the host's sysctls: kernel.panic_on_oops=1 from
a kubelet would turn any kernel oops into a reboot)."""

from __future__ import annotations

import re
import subprocess
import time

from tests.kind import cluster
from tests.kind.conftest import KindEnv

# Counters and per-interface keys that change by themselves or come and go with any container
_VOLATILE = re.compile(
    r"^(fs\.(dentry-state|file-nr|inode-nr|inode-state|quota\.)|kernel\.(random\.|ns_last_pid|pty\.nr"
    r"|sched_domain)|net\.netfilter\.nf_conntrack_count|net\.(ipv4|ipv6)\.(conf|neigh)\.(veth|br-)"
    r"|net\.ipv6\.route\.gc_)"
)


def docker_names(kind: str) -> list[str]:
    out = subprocess.run(
        ["docker", kind, "ls", "-a", "--format", "{{.Names}}"] if kind == "container"
        else ["docker", kind, "ls", "--format", "{{.Name}}"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [n for n in out.split() if n.startswith(cluster.CLUSTER)]


def test_dev_down_leaves_nothing_and_the_host_sysctls_unchanged(kind_env: KindEnv) -> None:
    down = cluster.script("dev-down.sh")
    print(f"\n--- deploy/kind/dev-down.sh ({down.seconds:.0f} s) ---\n{down.output}")
    assert down.returncode == 0, down.output
    assert docker_names("container") == []
    assert docker_names("network") == []
    assert docker_names("volume") == []
    assert not cluster.STATE.exists()
    time.sleep(1)
    after = cluster.sysctls()
    before = kind_env.sysctls_before
    changed = {
        k: (before[k], after[k]) for k in before.keys() & after.keys()
        if before[k] != after[k] and not _VOLATILE.match(k)
    }
    assert changed == {}
    for key in ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory", "vm.panic_on_oom"):
        assert after[key] == before[key], key
    print("\ntimings: dev-up.sh steps (s since start):")
    for at, step in kind_env.up.steps():
        print(f"  {at:5d}  {step}")
    print(f"  total dev-up.sh {kind_env.up.seconds:.0f} s; dev-down.sh {down.seconds:.0f} s")
    for name, seconds in kind_env.timings:
        print(f"  {name} {seconds:.0f} s")
