"""The kind environment of `make dev` as the kind tests drive it: run deploy/kind's scripts on a
cluster of their own (`pss-kind-test`, so a developer's `make dev` cluster is left alone), and read
the cluster with kubectl (the one built for the node image when cached, else kubectl from PATH).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
KIND_DIR = REPO / "deploy" / "kind"
CLUSTER = "pss-kind-test"
CONTEXT = f"kind-{CLUSTER}"
SECRET = "regcred"
SYNCER_NS = "pullsecret-syncer"
MANAGED_BY = "app.kubernetes.io/managed-by=pullsecret-syncer"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pullsecret-syncer"
STATE = CACHE / f"kind-dev-{CLUSTER}"
KUBE_VERSION = os.environ.get("PSS_KUBE_VERSION", "1.37.2")
_STEP = re.compile(r"^==> \[(\d+) s\] (.*)$")
T = TypeVar("T")


def env() -> dict[str, str]:
    return {**os.environ, "PSS_KIND_CLUSTER": CLUSTER}


@dataclass(frozen=True)
class Run:
    args: list[str]
    returncode: int
    output: str
    seconds: float

    def steps(self) -> list[tuple[int, str]]:
        """The `==> [N s] step` lines of a deploy/kind script: (seconds since start, step)."""
        found = []
        for line in self.output.splitlines():
            m = _STEP.match(line)
            if m:
                found.append((int(m.group(1)), m.group(2)))
        return found


def script(name: str, *, timeout: float = 3600) -> Run:
    """Run deploy/kind/NAME against the test cluster; output (stdout and stderr) captured."""
    began = time.monotonic()
    proc = subprocess.run(
        ["bash", str(KIND_DIR / name)],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run([name], proc.returncode, proc.stdout, time.monotonic() - began)


def kubectl_binary() -> str:
    cached = CACHE / "kind-node" / f"kubernetes-{KUBE_VERSION}" / "kubectl"
    return str(cached) if cached.exists() else "kubectl"


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        [kubectl_binary(), "--context", CONTEXT, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def get(*args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json"))


def eventually(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """The first truthy result of `probe`, polled every 2 s; AssertionError naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})"
            )
        time.sleep(2)


def namespace(name: str, labels: dict[str, str] | None = None) -> str:
    labels_yaml = "".join(f"\n    {k}: {v}" for k, v in (labels or {}).items())
    kubectl("apply", "-f", "-", input=f"""apiVersion: v1
kind: Namespace
metadata:
  name: {name}
  labels:
    e2e: kind{labels_yaml}
""")
    return name


def private_image() -> str:
    return (STATE / "private-image").read_text().strip()


def hello_pod(ns: str, name: str) -> None:
    """A Pod of the private image whose spec names no imagePullSecrets (pulled every time)."""
    kubectl("apply", "-f", "-", input=f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: hello
      image: {private_image()}
      imagePullPolicy: Always
""")


def hello_deployment(ns: str, name: str) -> None:
    kubectl("apply", "-f", "-", input=f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: hello
          image: {private_image()}
          imagePullPolicy: Always
""")


def pod_state(pod: dict[str, Any]) -> str:
    """Running, the waiting reason of its container, or Pending."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        state = status.get("state", {})
        if "running" in state:
            return "Running"
        if "waiting" in state:
            return str(state["waiting"].get("reason", "Waiting"))
        return "Terminated"
    return "Pending"


def wait_pod(ns: str, name: str, states: set[str], *, timeout: float = 180) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pod: dict[str, Any] = get("-n", ns, "pod", name)
        return pod if pod_state(pod) in states else None

    return eventually(probe, timeout=timeout, what=f"pod {ns}/{name} in {sorted(states)}")


def events(ns: str, name: str) -> str:
    items = get("-n", ns, "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return "\n".join(f"{e.get('reason')}: {e.get('message')}" for e in items)


def sa_pull_secrets(ns: str, sa: str = "default") -> list[str]:
    return [r["name"] for r in get("-n", ns, "serviceaccount", sa).get("imagePullSecrets") or []]


def wait_secret_and_sa(ns: str, *, timeout: float = 120) -> dict[str, Any]:
    """The Secret, once the syncer wrote it and the default ServiceAccount lists it."""

    def probe() -> dict[str, Any] | None:
        found = json.loads(kubectl("-n", ns, "get", "secret", "-o", "json"))["items"]
        secret = next((s for s in found if s["metadata"]["name"] == SECRET), None)
        return secret if secret and SECRET in sa_pull_secrets(ns) else None

    return eventually(probe, timeout=timeout, what=f"Secret {ns}/{SECRET} listed by {ns}/default")


def registry_log() -> str:
    proc = subprocess.run(
        ["docker", "logs", f"{CLUSTER}-registry"], capture_output=True, text=True, check=True
    )
    return proc.stdout + proc.stderr


def sysctls() -> dict[str, str]:
    """`sysctl -a` of this host (its own network namespace)."""
    out = subprocess.run(["sysctl", "-a"], capture_output=True, text=True, check=False).stdout
    values = {}
    for line in out.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key] = value
    return values
