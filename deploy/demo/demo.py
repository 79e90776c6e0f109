"""`make demo`: the real daemon on a local stack, narrated in a few lines, then everything stopped.

Starts the servers of tests/stack (etcd + kube-apiserver + kube-controller-manager v1.37,
OpenBao, moto), seeds two fake registry credentials, runs `pullsecret-syncer run` with
config/examples/demo.yaml behind counting proxies, creates namespaces, rotates a credential,
prints what happened and how many requests it took, and stops all it started (also on Ctrl-C).
No credential value is ever printed. Exit: 0 done, 1 something did not happen, 130/143 interrupted.

    python3 deploy/demo/demo.py     # PSS_DEMO_SENTINEL=1: seed values contain SENTINEL (leak tests)
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the stack modules the integration tests use

import requests  # noqa: E402
import tally  # noqa: E402  (deploy/demo/tally.py, beside this file)
import yaml  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from stack import aws, faultproxy, kube, procs, runtime, vault  # noqa: E402

DEMO_CONFIG = REPO / "config" / "examples" / "demo.yaml"
VAULT_PATH = "registries/dockerhub"  # KV v2 under secret/, as demo.yaml's header says
AWS_SECRET_ID = "demo/registry/ghcr"  # noqa: S105 - a name, not a value
DOCKERHUB = "https://index.docker.io/v1/"
MATCHED = ("demo-a", "demo-b", "team-x")  # team-x matches through its label
UNMATCHED = "other"
CONVERGE_SECONDS = 45.0  # generous: a busy 2-core machine; the usual figure is ~1 s


class DemoFailed(Exception):
    """Something the demo waits for did not happen; the message says what."""


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Narrator:
    def __init__(self) -> None:
        self.began = time.monotonic()

    def say(self, text: str) -> None:
        print(f"{time.monotonic() - self.began:6.1f}s  {text}", flush=True)


def fake_password(label: str) -> str:
    """Clearly fake values; with PSS_DEMO_SENTINEL=1 they carry SENTINEL for leak checks."""
    marker = "SENTINEL-" if os.environ.get("PSS_DEMO_SENTINEL") == "1" else ""
    return f"fake-{label}-{marker}{secrets.token_hex(4)}"


def wait_for(what: str, check: Callable[[], Any], *, stop: threading.Event,
             timeout: float = CONVERGE_SECONDS, daemon: procs.Proc | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        if daemon is not None and not daemon.alive():
            raise DemoFailed(f"the daemon exited ({daemon.popen.returncode}) while waiting for "
                             f"{what}")
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # not there yet (404, connection refused...)
            last = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last).__name__})" if last else ""
            raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        stop.wait(0.1)


def auths_of(secret: Any) -> dict[str, str]:
    """registry -> its `auth` string, in memory only (compared, never printed)."""
    raw = base64.b64decode((secret.data or {}).get(".dockerconfigjson", ""))
    doc = json.loads(raw)
    return {reg: str(entry.get("auth", "")) for reg, entry in doc.get("auths", {}).items()}


def auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def syncer_command() -> list[str]:
    if os.environ.get("PSS_SYNCER"):  # an installed pullsecret-syncer (the tests set it)
        return [os.environ["PSS_SYNCER"]]
    script = Path(sys.executable).parent / "pullsecret-syncer"
    if script.is_file():
        return [str(script)]
    found = shutil.which("pullsecret-syncer")
    return [found] if found else [sys.executable, "-m", "syncer"]


class Demo:
    def __init__(self, rt: runtime.Runtime, out: Narrator, stop: threading.Event) -> None:
        self.rt, self.out, self.stop = rt, out, stop
        self.proxies: list[faultproxy.FaultProxy] = []
        self.servers: list[Any] = []
        self.daemon: procs.Proc | None = None
        self.daemon_exit: int | None = None
        self.leak_values: list[str] = []

    def run(self) -> None:
        out = self.out
        out.say(f"starting etcd + kube-apiserver + kube-controller-manager "
                f"v{kube.kube_version()}, OpenBao (Vault API) and moto (AWS) on 127.0.0.1 ...")
        cluster = kube.start(self.rt)
        self.servers.append(cluster)
        bao = vault.start(self.rt.subdir("vault"))
        self.servers.append(bao)
        moto = aws.start(self.rt.subdir("aws"))
        self.servers.append(moto)
        out.say(f"stack ready (kube-apiserver {cluster.version} in "
                f"{cluster.startup_seconds:.1f}s); "
                f"logs in {self.rt.root}")

        users = {"dockerhub": "demo-hub-user", "ghcr": "demo-ghcr-user"}
        hub_pw, ghcr_pw = fake_password("hub-pw"), fake_password("ghcr-pw")
        bao.client().secrets.kv.v2.create_or_update_secret(
            path=VAULT_PATH, secret={"username": users["dockerhub"], "password": hub_pw},
            mount_point=bao.kv2_mount)
        moto.client("secretsmanager").create_secret(Name=AWS_SECRET_ID, SecretString=json.dumps(
            {"username": users["ghcr"], "password": ghcr_pw, "registry": "ghcr.io"}))
        self.leak_values += [hub_pw, ghcr_pw, auth(users["dockerhub"], hub_pw),
                             auth(users["ghcr"], ghcr_pw)]
        out.say(f"seeded 2 fake credentials: dockerhub in Vault ({bao.kv2_mount}/{VAULT_PATH}, "
                f"KV v2), ghcr in AWS Secrets Manager ({AWS_SECRET_ID})")

        kube_proxy = self._proxy(cluster.server, tls=True, upstream_ca=cluster.ca_file)
        vault_proxy = self._proxy(bao.addr)
        aws_proxy = self._proxy(moto.endpoint)
        config_path = self.rt.root / "demo.yaml"
        doc = yaml.safe_load(DEMO_CONFIG.read_text())
        doc["backends"]["aws"]["endpointUrl"] = aws_proxy.url
        config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        kubeconfig = cluster.kubeconfig_via(kube_proxy.url)
        out.say(f"config: {DEMO_CONFIG.relative_to(REPO)} with backends.aws.endpointUrl -> moto; "
                "a counting proxy in front of each server")

        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KUBERNETES_SERVICE_", "VAULT_", "AWS_", "PSS_"))
               and k != "KUBECONFIG"}
        env.update(moto.env)
        env.update({"VAULT_ADDR": vault_proxy.url, "VAULT_TOKEN": bao.token,
                    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
        port = procs.free_port()
        argv = [*syncer_command(), "run", "--config", str(config_path),
                "--kubeconfig", str(kubeconfig), "--http-addr", f"127.0.0.1:{port}",
                "--log-format", "json", "--log-level", "debug"]
        log_path = self.rt.root / "pullsecret-syncer.log"
        daemon_began = time.monotonic()
        self.daemon = procs.start("pullsecret-syncer", argv, log_path=log_path, env=env,
                                  cwd=REPO)
        out.say(f"started: pullsecret-syncer run --config {config_path.name} --kubeconfig "
                f"<via proxy> --http-addr 127.0.0.1:{port} (pid {self.daemon.pid})")
        wait_for("the daemon's /readyz", lambda: requests.get(
            f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
            stop=self.stop, daemon=self.daemon)
        out.say("daemon ready: first full pass done (/readyz 200)")

        core = cluster.core()
        for name in (*MATCHED, UNMATCHED):
            labels = {"pull-secrets": "enabled"} if name == "team-x" else {}
            core.create_namespace(k8s.V1Namespace(
                metadata=k8s.V1ObjectMeta(name=name, labels=labels)))
        out.say("created namespaces demo-a, demo-b (pattern demo-*), team-x (label "
                f"pull-secrets=enabled), {UNMATCHED} (matches nothing)")

        def synced(ns: str) -> Any:
            secret = core.read_namespaced_secret("regcred", ns)
            sa = core.read_namespaced_service_account("default", ns)
            refs = [r.name for r in (sa.image_pull_secrets or [])]
            return (secret, refs) if "regcred" in refs else None

        for ns in MATCHED:
            secret, refs = wait_for(f"Secret and ServiceAccount in {ns}", lambda n=ns: synced(n),
                                    stop=self.stop, daemon=self.daemon)
            creds = (secret.metadata.annotations or {}).get("pullsecret-syncer.io/credentials")
            out.say(f"Secret {ns}/regcred written: registries {', '.join(sorted(auths_of(secret)))}"
                    f" (credentials {creds})")
            out.say(f"ServiceAccount {ns}/default patched: imagePullSecrets [{', '.join(refs)}]")
        wait_for(f"ServiceAccount {UNMATCHED}/default",
                 lambda: core.read_namespaced_service_account("default", UNMATCHED),
                 stop=self.stop)
        untouched = (not core.list_namespaced_secret(UNMATCHED, field_selector="type="
                     "kubernetes.io/dockerconfigjson").items
                     and not core.read_namespaced_service_account(
                         "default", UNMATCHED).image_pull_secrets)
        if not untouched:
            raise DemoFailed(f"namespace {UNMATCHED} was written to although nothing selects it")
        out.say(f"namespace {UNMATCHED}: left alone (no Secret, its ServiceAccount untouched)")

        before = {ns: auths_of(core.read_namespaced_secret("regcred", ns)) for ns in MATCHED}
        sync_records = {name: p.requests for name, p in (
            ("kube", kube_proxy), ("vault", vault_proxy), ("aws", aws_proxy))}
        new_pw = fake_password("hub-pw-rotated")
        new_auth = auth(users["dockerhub"], new_pw)
        self.leak_values += [new_pw, new_auth]
        version = bao.client().secrets.kv.v2.create_or_update_secret(
            path=VAULT_PATH, secret={"username": users["dockerhub"], "password": new_pw},
            mount_point=bao.kv2_mount)["data"]["version"]
        rotated_at = time.monotonic()
        out.say(f"rotated dockerhub: version {version} written to Vault "
                f"(refreshInterval {doc['defaults']['refreshInterval']})")

        def arrived(ns: str) -> bool:
            now = auths_of(core.read_namespaced_secret("regcred", ns))
            return now.get(DOCKERHUB) == new_auth and now["ghcr.io"] == before[ns]["ghcr.io"]

        for ns in MATCHED:
            wait_for(f"the rotation in {ns}", lambda n=ns: arrived(n), stop=self.stop,
                     daemon=self.daemon)
        took = time.monotonic() - rotated_at
        out.say(f"rotation arrived: Secrets in {', '.join(MATCHED)} rewritten {took:.1f}s after "
                "the write; the ghcr entry is unchanged")
        core.api_client.close()

        self.daemon.stop(timeout=15)
        self.daemon_exit = self.daemon.popen.returncode
        ran = time.monotonic() - daemon_began
        out.say(f"stopped the daemon with SIGTERM: exit {self.daemon_exit}")
        self.report(kube_proxy, vault_proxy, aws_proxy, sync_records, ran=ran,
                    refresh=str(doc["defaults"]["refreshInterval"]), log_path=log_path)

    def _proxy(self, upstream: str, *, tls: bool = False,
               upstream_ca: Path | None = None) -> faultproxy.FaultProxy:
        cert = self.rt.authority.issue(f"demo-proxy-{len(self.proxies)}") if tls else None
        proxy = faultproxy.FaultProxy(upstream, serving_cert=cert, upstream_ca=upstream_ca,
                                      serving_ca_file=self.rt.authority.ca_file if tls else None)
        proxy.start()
        self.proxies.append(proxy)
        return proxy

    def report(self, kube_proxy: faultproxy.FaultProxy, vault_proxy: faultproxy.FaultProxy,
               aws_proxy: faultproxy.FaultProxy, sync_records: dict[str, list[Any]], *,
               ran: float, refresh: str, log_path: Path) -> None:
        k_all = kube_proxy.requests
        k_sync = tally.kube(sync_records["kube"])
        k_rot = tally.kube(k_all[len(sync_records["kube"]):])
        k_tot = tally.kube(k_all)
        hub = tally.count(vault_proxy.requests, method="GET",
                          path=rf"^/v1/secret/data/{VAULT_PATH}$")
        ghcr = tally.count(aws_proxy.requests, method="POST", path=r"^/$")
        gets = sum(k_tot.gets.values())
        print(f"\nRequests the daemon made in its {ran:.0f}s (counted by the proxies):")
        print(f"  backend reads: dockerhub {hub} (Vault), ghcr {ghcr} (AWS GetSecretValue): one "
              f"per refreshInterval ({refresh}) per credential, however many namespaces use it")
        print(f"  Kubernetes writes for the 3 new namespaces: {k_sync.writes_line()}")
        print(f"  Kubernetes writes for the rotation: {k_rot.writes_line()}")
        by_resource = ", ".join(f"{r} {n}" for r, n in sorted(k_tot.gets.items()))
        get_text = ("no per-namespace GETs" if gets == 0 else f"{gets} single-object GETs "
                    f"({by_resource}): re-reads after a refused precondition")
        print(f"  Kubernetes reads: {k_tot.lists} LIST, {k_tot.watches} WATCH; {get_text}")
        lines = log_path.read_text(errors="replace").splitlines()
        leaked = [v for v in self.leak_values if any(v in line for line in lines)]
        if leaked:
            raise DemoFailed(f"{len(leaked)} credential value(s) appear in the daemon log "
                             f"{log_path}")
        print(f"  leak check: none of the {len(self.leak_values)} password/auth values is in "
              f"the daemon's log ({len(lines)} lines)")
        if k_rot.write_count("serviceaccounts") or not k_rot.write_count("secrets"):
            raise DemoFailed("the rotation should rewrite Secrets and no ServiceAccount")

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(timeout=15)
        for proxy in self.proxies:
            proxy.stop()
        for server in reversed(self.servers):
            server.stop()
        procs.stop_all()


def main() -> int:
    out = Narrator()
    stop = threading.Event()
    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        raise Interrupted(signum)  # may land in a finalizer, which swallows it: see below

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    print("pullsecret-syncer demo: the real daemon against a local kube-apiserver, OpenBao and "
          "moto", flush=True)
    rt = runtime.Runtime(Path(tempfile.mkdtemp(prefix="pss-demo-")))
    demo = Demo(rt, out, stop)
    status = 1
    try:
        demo.run()
        status = 128 + received[0] if received else 0
        if received:  # the signal's exception was swallowed (it hit a finalizer)
            out.say(f"interrupted ({signal.Signals(received[0]).name}): stopping everything")
    except Interrupted as exc:
        out.say(f"interrupted ({exc}): stopping everything")
        status = 128 + exc.signum
    except procs.StackUnavailableError as exc:
        print(f"error: the local stack did not start: {exc.report()}\n"
              "hint: `make setup` installs and builds what the stack needs", file=sys.stderr)
    except DemoFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        if demo.daemon is not None:
            tail = demo.daemon.tail(lines=20)
            for value in demo.leak_values:  # never print a value, even a leaked one
                tail = tail.replace(value, "<redacted>")
            print(f"----- daemon log (tail of {demo.daemon.log_path}) -----\n{tail}",
                  file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.close()
        rt.cleanup(keep=status == 1)  # a failure keeps the logs; Ctrl-C does not
        where = f"; logs kept in {rt.root}" if status == 1 else ""
        out.say(f"stopped everything the demo started{where}")
    return status


if __name__ == "__main__":
    sys.exit(main())
