"""`verify` is bounded: a hostile or broken registry cannot hold a `sync` (or the daemon) up, nor
blow up its memory, and the other credentials are published meanwhile.

Real parts: the `sync` CLI as a subprocess, OpenBao, the real apiserver, the real CNCF registry
for the good credential. The hostile registries are small local servers speaking raw HTTP over
loopback sockets: one drips its answer one byte a second (a minute and more to finish), one
answers `401` with a 400 MB body and names a token realm answering 200 with another 400 MB.
The peak memory of the `sync` process is its own VmHWM, read by itself at exit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import read_secret, wait_for_sa
from tests.integration.daemonproc import REPO
from tests.stack import product

pytestmark = pytest.mark.integration

USER = "reg-user"
GOOD = "good-SENTINEL-bound-7a1"
HOSTILE = "hostile-SENTINEL-bound-3f9"
BIG = 400 * 1024 * 1024


class HostileRegistry:
    """A loopback server that answers every connection with `answer(conn, request_line)`."""

    def __init__(self, answer: Callable[[socket.socket, bytes, int], None]) -> None:
        self._answer = answer
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="hostile").start()

    @property
    def key(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            request = conn.recv(65536)
            self._answer(conn, request.split(b"\r\n", 1)[0], self.port)

    def close(self) -> None:
        self._stop.set()
        self._server.close()


def drip(conn: socket.socket, request: bytes, port: int) -> None:
    """One byte of a `401` every second: a per-read timeout (2 s and more) never fires, and the
    answer takes over a minute."""
    for byte in b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"drip\"\r\n\r\n":
        conn.sendall(bytes([byte]))
        time.sleep(1)


def flood(conn: socket.socket, request: bytes, port: int) -> None:
    """`/v2/`: 401 with a 400 MB body, naming a realm (here) that answers 200 with 400 MB."""
    if b" /token" in request:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n"
        body = b'{"token": "' + b"x" * 65536
    else:
        head = (f"HTTP/1.1 401 Unauthorized\r\nContent-Length: {BIG}\r\n"
                f'WWW-Authenticate: Bearer realm="http://127.0.0.1:{port}/token",service=x\r\n\r\n')
        body = b"y" * 65536
    conn.sendall(head.encode())
    for _ in range(BIG // len(body)):
        conn.sendall(body)


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostileRegistry]]:
    made: list[HostileRegistry] = []

    def make(answer: Callable[[socket.socket, bytes, int], None]) -> HostileRegistry:
        made.append(HostileRegistry(answer))
        return made[-1]

    yield make
    for server in made:
        server.close()


def put(vault: Any, path: str, password: str, leak_values: list[str]) -> None:
    leak_values.extend([password, base64.b64encode(f"{USER}:{password}".encode()).decode()])
    vault.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": USER, "password": password}, mount_point=vault.kv2_mount)


# `sync` of the installed product, reporting its own peak memory at exit: VmHWM of its own
# address space. (ru_maxrss from wait4 would not do: the kernel records the parent's high-water
# mark at the child's exec, so a large pytest process would be measured instead of `sync`.)
_PEAK = """
import atexit, pathlib, runpy, sys
out = pathlib.Path(sys.argv[1])
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            out.write_text(line.split()[1])
atexit.register(peak)
sys.argv = ["pullsecret-syncer", *sys.argv[2:]]
runpy.run_module("syncer", run_name="__main__", alter_sys=True)
"""


def run_sync(config: Path, env: dict[str, str]) -> tuple[int, str, float, int]:
    """`sync` as a user runs it: exit code, output, seconds, peak memory (VmHWM) in KiB."""
    peak_file = config.with_suffix(".peak")
    started = time.monotonic()
    proc = subprocess.run([str(product.installed().python), "-I", "-c", _PEAK, str(peak_file),
                           "sync", "--config", str(config)], env=env, cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - started
    return proc.returncode, proc.stdout.decode(), seconds, int(peak_file.read_text())


def test_a_dripping_or_flooding_registry_cannot_hold_sync_and_the_others_are_published(
    vault: Any, core: Any, unique: str, leak_values: list[str], stack_env: dict[str, str],
    write_config: Callable[[str], Path], namespace_factory: Callable[..., str],
    registry_factory: Callable[..., Any], hostile: Callable[..., HostileRegistry],
) -> None:
    real = registry_factory(auth="htpasswd", users={USER: GOOD})
    dripping, flooding = hostile(drip), hostile(flood)
    put(vault, f"pss/{unique}/good", GOOD, leak_values)
    put(vault, f"pss/{unique}/drip", HOSTILE, leak_values)
    put(vault, f"pss/{unique}/flood", HOSTILE, leak_values)
    ns = {name: namespace_factory(prefix=f"vb-{name}") for name in ("good", "drip", "flood")}
    for namespace in ns.values():
        wait_for_sa(core, namespace)
    registries = {"good": real.key, "drip": dripping.key, "flood": flooding.key}
    credentials = "".join(f"""
  {name}:
    backend: vault
    path: pss/{unique}/{name}
    registry: {registries[name]}
    verify: {{plainHttp: true}}""" for name in ns)
    mappings = "".join(f"""
  - name: {name}
    namespaces: {{names: [{ns[name]}]}}
    credentials: [{name}]""" for name in ns)
    config = write_config(f"""
version: 1
backends:
  vault: {{type: vault, address: {vault.addr}, auth: {{method: token}}}}
credentials:{credentials}
mappings:{mappings}
""")

    code, output, seconds, peak_kib = run_sync(config, stack_env)
    print(f"sync under a dripping and a flooding registry: {seconds:.1f} s, "
          f"peak memory (VmHWM) {peak_kib / 1024:.0f} MiB, exit {code}")

    assert code == 0, output
    assert seconds < 60, output
    assert peak_kib < 200 * 1024  # the 400 MB answers were never read
    assert dripping.connections >= 1 and flooding.connections >= 1  # both were really asked
    for name, namespace in ns.items():  # ok, and the two unreachable ones: published anyway
        auths = json.loads(base64.b64decode(
            read_secret(core, namespace, "regcred").data[".dockerconfigjson"]))["auths"]
        assert list(auths) == [registries[name]], name
        assert auths[registries[name]]["password"] == (GOOD if name == "good" else HOSTILE)
    assert "Traceback" not in output
    for value in (GOOD, HOSTILE):
        assert value not in output


@pytest.mark.parametrize("answer", [drip, flood], ids=["drip", "flood"])
def test_a_check_ends_within_its_request_bound_whatever_the_registry_does(
    answer: Callable[[socket.socket, bytes, int], None], hostile: Callable[..., HostileRegistry],
) -> None:
    from syncer.credentials import verify

    server = hostile(answer)
    started = time.monotonic()
    outcome = verify.check(server.key, {"username": USER, "password": HOSTILE},
                           options=verify.Options(plain_http=True), timeout=2, deadline=3)
    seconds = time.monotonic() - started

    assert outcome.result == "unreachable", outcome
    assert seconds < 3.5
    assert HOSTILE not in outcome.detail


def test_checks_of_one_credential_run_side_by_side(
    hostile: Callable[..., HostileRegistry], registry_factory: Callable[..., Any],
) -> None:
    """Three dripping registries in one credential cost one bound, not three."""
    from syncer import config
    from syncer.credentials import publish, verify

    servers = [hostile(drip) for _ in range(3)]
    real = registry_factory(auth="htpasswd", users={USER: GOOD})
    auths = {s.key: {"username": USER, "password": HOSTILE} for s in servers}
    auths[real.key] = {"username": USER, "password": GOOD}

    def check(key: str, entry: Any, *, options: verify.Options) -> verify.Outcome:
        return verify.check(key, entry, options=options, timeout=2, deadline=3)

    spec = types.SimpleNamespace(name="many", verify=config.VerifySpec(plain_http=True))
    started = time.monotonic()
    found = publish.VerifyGate(check=check).outcomes(spec, auths)  # type: ignore[arg-type]
    seconds = time.monotonic() - started

    assert seconds < 3.5, seconds  # one bound (2 s), not three in a row
    assert found[real.key].result == "ok"
    assert {found[s.key].result for s in servers} == {"unreachable"}
