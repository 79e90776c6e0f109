"""The tools of the peer benchmark, each set up in its own documented recommended way and run as
a process on this machine: our daemon, External Secrets Operator, imagepullsecret-patcher.

Every tool runs as its own ServiceAccount (its token in a kubeconfig, or mounted at the in-cluster
paths), so the apiserver's audit log tells its requests apart from everyone else's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks import harness
from benchmarks.peers import world as world_mod

HERE = Path(__file__).resolve().parent
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # what rest.InClusterConfig() reads


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pullsecret-syncer" / "peers"


def pins() -> dict[str, dict[str, str]]:
    doc: dict[str, dict[str, str]] = json.loads((HERE / "pins.json").read_text())
    return doc


def build(name: str) -> tuple[Path | None, dict[str, Any]]:
    """Run build.sh for `name`: (cache dir, build info) or (None, why it is not built)."""
    pin = pins()[name]
    out = cache_root() / f"{name}-{pin['version']}"
    began = time.monotonic()
    proc = subprocess.run(["bash", str(HERE / "build.sh"), name], capture_output=True,
                          text=True, check=False, timeout=3600)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return None, {"built": False, "module": pin["module"], "version": pin["version"],
                      "exit": proc.returncode, "why": lines[-1] if lines else "?"}
    info = json.loads((out / "build-info.json").read_text())
    return out, {"built": True, "cached": "cached" in proc.stdout,
                 "seconds": time.monotonic() - began, **info}


class Process:
    """A started tool process (its own process group) with /proc readings."""

    def __init__(self, proc: harness.procs.Proc) -> None:
        self.proc = proc
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.alive()

    def tail(self) -> str:
        return self.proc.tail(lines=40)

    def stop(self) -> None:
        self.proc.stop()


@dataclass(slots=True)
class Ours:
    """pullsecret-syncer `run`, with the settings of our own benchmark (benchmarks/run.py)."""

    stack: harness.Stack
    qps: float = 50.0
    burst: int = 40
    name: str = "pullsecret-syncer"
    patches_service_accounts: bool = True
    identity: str = ""
    daemon: harness.Daemon | None = None
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.identity = self.stack.identity
        self.config = self.stack.workdir / "ours.yaml"

    def info(self) -> dict[str, Any]:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True,
                             text=True, check=False).stdout.strip()
        return {"version": "this tree", "commit": rev,
                "settings": {"--kube-qps": self.qps, "--kube-burst": self.burst,
                             "serviceAccounts": ["default"]},
                "cite": ["docs/configuration.md", "docs/benchmarks.md"]}

    def prepare(self, w: world_mod.World, *, refresh: float) -> None:
        creds = "\n".join(
            f"  c{i}: {{backend: vault, path: {w.path(i)}, registry: {w.registry(i)}}}"
            for i in range(w.credentials))
        names = ", ".join(f"c{i}" for i in range(w.credentials))
        self.config.write_text(f"""version: 1
defaults:
  refreshInterval: {refresh:g}s
backends:
  vault: {{type: vault, address: {self.stack.vault_proxy.url}, auth: {{method: token}}}}
credentials:
{creds}
mappings:
  - name: bench
    namespaces: {{selector: {{matchLabels: {{{world_mod.LABEL}: {w.prefix}}}}}}}
    secretName: {world_mod.SECRET_NAME}
    credentials: [{names}]
    serviceAccounts: [default]
""")

    def start(self) -> Process | harness.Daemon:
        self.daemon = harness.Daemon(self.stack, self.config, name="ours", args=(
            "--kube-qps", str(self.qps), "--kube-burst", str(self.burst)))
        return self.daemon


ESO_DOCS = {
    "ClusterSecretStore, Vault provider, token auth": (
        "https://external-secrets.io/v0.16.2/provider/hashicorp-vault/ "
        "(docs/provider/hashicorp-vault.md, docs/snippets/vault-token-store.yaml in the module)"),
    "ClusterExternalSecret (namespaceSelectors, refreshTime)": (
        "https://external-secrets.io/latest/api/clusterexternalsecret/ "
        "(docs/snippets/full-cluster-external-secret.yaml)"),
    "template producing .dockerconfigjson": (
        "https://external-secrets.io/latest/guides/common-k8s-secret-types "
        "(docs/guides/common-k8s-secret-types.md)"),
    "dataFrom.extract + rewrite: one read per credential, keys kept apart": (
        "docs/guides/datafrom-rewrite.md"),
    "controller flags (defaults: --concurrent 1, --client-qps 50, --client-burst 100; "
    "Helm chart value concurrent: 1)": (
        "docs/api/controller-options.md, deploy/charts/external-secrets/values.yaml"),
}


@dataclass(slots=True)
class Eso:
    """External Secrets Operator's core controller, out of cluster (KUBECONFIG), no webhook,
    no leader election, chart defaults otherwise; a ClusterSecretStore on OpenBao and one
    ClusterExternalSecret selecting the same namespaces with the same refresh interval."""

    stack: harness.Stack
    home: Path
    build_info: dict[str, Any]
    name: str = "external-secrets"
    patches_service_accounts: bool = False
    identity: str = ""
    kubeconfig: Path | None = None
    process: Process | None = None

    def info(self) -> dict[str, Any]:
        return {"version": self.build_info.get("version"),
                "commit": "not served by the module proxy (tag only); go.sum "
                          f"{self.build_info.get('go_sum')}",
                "settings": {"--enable-leader-election": False, "--concurrent": 1,
                             "--client-qps": 50, "--client-burst": 100,
                             "template.engineVersion": "v2", "creationPolicy": "Owner"},
                "cite": ESO_DOCS, "build": self.build_info}

    def prepare(self, w: world_mod.World, *, refresh: float) -> None:
        admin = w.admin
        self.identity, self.kubeconfig = world_mod.identity(
            self.stack.kube, self.stack.workdir, name="eso", rules=None)
        crds = [d for d in yaml.safe_load_all((self.home / "crds.yaml").read_text()) if d]
        ext = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        for crd in crds:  # created directly: no last-applied annotation, so no size limit
            admin.call("POST", ext, body=crd, ok=(201, 409))
        for crd in crds:
            harness.wait_until(lambda c=crd: any(
                x.get("type") == "Established" and x.get("status") == "True"
                for x in (admin.get(f"{ext}/{c['metadata']['name']}").get("status") or {})
                .get("conditions") or []), timeout=60, what="CRDs established")
        admin.call("POST", "/api/v1/namespaces/pss-bench/secrets", body={
            "metadata": {"name": "vault-token"}, "stringData": {"token": self.stack.vault.token}},
            ok=(201, 409))
        api = "/apis/external-secrets.io/v1"
        admin.call("POST", f"{api}/clustersecretstores", body={
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": "bench-vault"},
            "spec": {"provider": {"vault": {
                "server": self.stack.vault_proxy.url, "path": self.stack.vault.kv2_mount,
                "version": "v2", "auth": {"tokenSecretRef": {
                    "name": "vault-token", "namespace": "pss-bench", "key": "token"}}}}}},
            ok=(201,))
        admin.call("POST", f"{api}/clusterexternalsecrets", body=cluster_external_secret(
            w, refresh=refresh), ok=(201,))

    def start(self) -> Process:
        assert self.kubeconfig is not None
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KUBERNETES_SERVICE_", "VAULT_", "AWS_", "PSS_"))}
        env["KUBECONFIG"] = str(self.kubeconfig)
        port = harness.procs.free_port()
        self.process = Process(harness.procs.start("external-secrets", [
            str(self.home / "eso"), "--enable-leader-election=false",
            f"--metrics-addr=127.0.0.1:{port}", "--loglevel=info"],
            log_path=self.stack.workdir / "eso.log", env=env))
        return self.process


def cluster_external_secret(w: world_mod.World, *, refresh: float) -> dict[str, Any]:
    """One ClusterExternalSecret: an ExternalSecret `regcred` in every labelled namespace that
    reads each credential once (dataFrom.extract, keys prefixed by rewrite) and renders the
    same `{"auths": …}` as our daemon with a v2 template (raw-string quotes in the template, so
    that the JSON around it needs no escaping)."""
    auths = {w.registry(i): {
        "auth": f"{{{{ printf `%s:%s` .c{i}_username .c{i}_password | b64enc }}}}",
        "password": f"{{{{ .c{i}_password }}}}", "username": f"{{{{ .c{i}_username }}}}"}
        for i in range(w.credentials)}
    return {
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "bench"},
        "spec": {
            "externalSecretName": world_mod.SECRET_NAME,
            "namespaceSelectors": [{"matchLabels": {world_mod.LABEL: w.prefix}}],
            "refreshTime": f"{refresh:g}s",
            "externalSecretSpec": {
                "refreshInterval": f"{refresh:g}s",
                "secretStoreRef": {"name": "bench-vault", "kind": "ClusterSecretStore"},
                "target": {"name": world_mod.SECRET_NAME, "creationPolicy": "Owner",
                           "template": {"type": "kubernetes.io/dockerconfigjson",
                                        "engineVersion": "v2",
                                        "data": {".dockerconfigjson": json.dumps(
                                            {"auths": auths}, sort_keys=True)}}},
                "dataFrom": [{"extract": {"key": w.path(i)},
                              "rewrite": [{"regexp": {"source": "(.*)",
                                                      "target": f"c{i}_$1"}}]}
                             for i in range(w.credentials)],
            }}}


PATCHER_SETTINGS = {"CONFIG_SECRETNAME": world_mod.SECRET_NAME, "CONFIG_FORCE": "true",
                    "CONFIG_ALLSERVICEACCOUNT": "false", "CONFIG_SERVICEACCOUNTS": "default"}


def in_cluster_command(argv: list[str], *, token: str, ca_file: Path,
                       scratch: Path) -> list[str]:
    """`argv` in a private mount namespace where SA_DIR holds `token` and `ca_file`, for a
    client that hard-codes the in-cluster paths (client-go's rest.InClusterConfig()). /run is a
    fresh tmpfs inside that namespace only, so nothing is created on the host."""
    sa = scratch / "serviceaccount"
    sa.mkdir(parents=True, exist_ok=True)
    (sa / "token").write_text(token)
    shutil.copy(ca_file, sa / "ca.crt")
    (sa / "namespace").write_text("pss-bench")
    script = ('set -e; mount --make-rprivate /; mount -t tmpfs tmpfs /run; '
              f'mkdir -p {SA_DIR}; mount --bind "$1" {SA_DIR}; shift; exec "$@"')
    return ["unshare", "-m", "sh", "-c", script, "sh", str(sa), *argv]


@dataclass(slots=True)
class Patcher:
    """titansoft imagepullsecret-patcher in its own model: one dockerconfigjson from the
    environment, a `regcred` in every namespace, `default` patched, loop every refresh."""

    stack: harness.Stack
    home: Path
    build_info: dict[str, Any]
    name: str = "imagepullsecret-patcher"
    patches_service_accounts: bool = True
    identity: str = ""
    dockerconfig: str = field(default="", repr=False)
    refresh: float = 10.0
    token: str = field(default="", repr=False)
    process: Process | None = None

    def info(self) -> dict[str, Any]:
        return {"version": self.build_info.get("version"), "commit": self.build_info.get(
            "version"), "settings": {**PATCHER_SETTINGS, "CONFIG_LOOP_DURATION":
                                     f"{self.refresh:g}s"},
                "cite": {"configuration by environment": "README.md, main.go (module source)"},
                "build": self.build_info}

    def prepare(self, w: world_mod.World, *, refresh: float) -> None:
        self.refresh = refresh
        self.identity, kubeconfig = world_mod.identity(
            self.stack.kube, self.stack.workdir, name="patcher", rules=None)
        self.token = kubeconfig.with_suffix(".token").read_text()
        self.dockerconfig = json.dumps({"auths": {w.registry(i): {
            "username": w.username(i), "password": w.password(i)}
            for i in range(w.credentials)}})

    def start(self) -> Process:
        host, _, port = self.stack.kube.server.removeprefix("https://").rpartition(":")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "PSS_"))}
        env.update(PATCHER_SETTINGS, KUBERNETES_SERVICE_HOST=host, KUBERNETES_SERVICE_PORT=port,
                   CONFIG_LOOP_DURATION=f"{self.refresh:g}s",
                   CONFIG_DOCKERCONFIGJSON=self.dockerconfig)
        assert self.stack.kube.ca_file is not None
        argv = in_cluster_command([str(self.home / "patcher")], token=self.token,
                                  ca_file=self.stack.kube.ca_file,
                                  scratch=self.stack.workdir / "patcher")
        self.process = Process(harness.procs.start(
            "imagepullsecret-patcher", argv, log_path=self.stack.workdir / "patcher.log",
            env=env))
        return self.process
