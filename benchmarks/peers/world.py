"""What every tool of the peer benchmark is given: the same N labelled namespaces, the same two
credentials in OpenBao (KV v2), and the same expected `.dockerconfigjson` to check Secrets by.

Tools are judged by what is in the cluster (read by the admin, never counted against a tool) and
by what reached the servers (the apiserver's audit log per user, the counting proxy in front of
OpenBao), never by a tool's own metrics.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import harness

SECRET_NAME = "regcred"
LABEL = "peers.pullsecret-syncer.io/bench"


@dataclass(slots=True)
class World:
    """One fresh stack's shared inputs: prefix, credentials, namespaces."""

    stack: harness.Stack
    credentials: int = 2
    prefix: str = field(default_factory=lambda: "p" + uuid.uuid4().hex[:5])
    rotation: int = 0
    admin: harness.Admin = field(init=False)

    def __post_init__(self) -> None:
        self.admin = harness.Admin(self.stack.kube)

    # ---- credentials ------------------------------------------------------------------------
    def path(self, i: int) -> str:
        return f"bench/{self.prefix}/c{i}"

    def registry(self, i: int) -> str:
        return f"r{i}.{self.prefix}.example"

    def username(self, i: int) -> str:
        return f"user{i}"

    def password(self, i: int) -> str:
        return f"pw-SENTINEL-{self.prefix}-{i}-{self.rotation if i == 0 else 0}"

    def write_credential(self, i: int) -> None:
        """Straight to OpenBao (not through the counting proxy)."""
        self.stack.vault.client().secrets.kv.v2.create_or_update_secret(
            path=self.path(i), secret={"username": self.username(i),
                                       "password": self.password(i)},
            mount_point=self.stack.vault.kv2_mount)

    def seed(self) -> None:
        for i in range(self.credentials):
            self.write_credential(i)

    def rotate(self) -> None:
        self.rotation += 1
        self.write_credential(0)

    # ---- namespaces -------------------------------------------------------------------------
    def ns(self, i: int) -> str:
        return f"{self.prefix}-{i}"

    def create_namespaces(self, start: int, count: int) -> dict[str, float]:
        names = [self.ns(i) for i in range(start, start + count)]
        created = self.admin.parallel(
            lambda name: self.admin.create_namespace(name, {LABEL: self.prefix}), names)
        accounts = self.admin.wait_accounts(self.prefix, start + count,
                                            timeout=120 + count * 0.5)
        return {"create_seconds": created, "sa_controller_seconds": accounts}

    # ---- what is in the cluster --------------------------------------------------------------
    def secrets(self) -> dict[str, dict[str, Any]]:
        """Every `regcred` of our namespaces, by namespace."""
        out = {}
        for s in self.admin.list_all("/api/v1/secrets",
                                     fieldSelector=f"metadata.name={SECRET_NAME}"):
            ns = str(s["metadata"]["namespace"])
            if ns.startswith(self.prefix + "-"):
                out[ns] = s
        return out

    def is_current(self, secret: dict[str, Any]) -> bool:
        """The Secret is a dockerconfigjson holding both credentials at their current value."""
        return current(secret, [(self.registry(i), self.username(i), self.password(i))
                                for i in range(self.credentials)])

    def current_count(self) -> int:
        return sum(1 for s in self.secrets().values() if self.is_current(s))

    def patched_accounts(self) -> int:
        return self.admin.patched_accounts(self.prefix, SECRET_NAME)


def current(secret: dict[str, Any], expected: list[tuple[str, str, str]]) -> bool:
    """`secret` is of type dockerconfigjson and has, per (registry, username, password), an entry
    with those values (and a matching `auth` if it has one)."""
    if secret.get("type") != "kubernetes.io/dockerconfigjson":
        return False
    try:
        raw = base64.b64decode((secret.get("data") or {}).get(".dockerconfigjson", ""))
        auths = json.loads(raw)["auths"]
        for registry, user, password in expected:
            entry = auths[registry]
            if (entry.get("username"), entry.get("password")) != (user, password):
                return False
            if "auth" in entry and base64.b64decode(entry["auth"]).decode() != (
                    f"{user}:{password}"):
                return False
    except (ValueError, KeyError, TypeError):
        return False
    return True


def identity(cluster: Any, workdir: Path, *, name: str,
             rules: list[dict[str, Any]] | None) -> tuple[str, Path]:
    """A ServiceAccount bound to `rules` (None: cluster-admin) and a kubeconfig with its token:
    the tool's requests are the audit-log events of this user (see harness.bench_identity)."""
    return harness.bench_identity(cluster, workdir, name=name, rules=rules)
