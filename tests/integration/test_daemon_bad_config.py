"""Nothing kills the daemon: every kind of broken config pushed at runtime — by a file change and
by SIGHUP — is rejected with a log line naming the file and the problem, and the running config
keeps working (the process stays healthy and ready, and still syncs a namespace created after
the rejection). On 1.20 builds a YAML date or tag error used to kill the housekeeping thread."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import CONVERGE, daemon_config, has_secret_and_ref, wait_for_sa
from tests.integration.daemonproc import DaemonProcess, wait_until
from tests.integration.test_daemon import creds  # noqa: F401 - the fixture

BROKEN = {
    "syntax": ("version: 1\nmappings: [\n", "invalid YAML"),
    "date": ("version: 2024-02-30\n", "line 1, column 10"),
    "tag": ("version: !!int abc\n", "line 1, column 10"),
    "unknown key": ("version: 1\nbackends: {}\ncredentials: {}\nmappings: []\nsurprise: 1\n",
                    "surprise"),
    "wrong type": ("version: 1\nbackends: {}\ncredentials: {}\nmappings: {}\n",
                   "mappings: expected a list"),
    "unknown reference": ("version: 1\nbackends: {}\ncredentials: {}\nmappings:\n"
                          "  - {name: m, namespaces: {names: [a]}, credentials: [ghrc]}\n",
                          "unknown credential 'ghrc'"),
}


@pytest.mark.parametrize("delivery", ["file change", "SIGHUP"])
def test_each_kind_of_broken_config_is_rejected_and_the_old_one_keeps_syncing(
    creds: dict[str, Any], unique: str, tmp_path: Path, core: Any, delivery: str,  # noqa: F811
    start_daemon: Callable[..., DaemonProcess], namespace_factory: Callable[..., str],
) -> None:
    cfg = tmp_path / "live.yaml"
    cfg.write_text(daemon_config(creds["vault"], creds["aws"], unique))
    daemon = start_daemon(cfg)
    daemon.wait_ready()
    for n, (kind, (text, says)) in enumerate(sorted(BROKEN.items())):
        seen = len(rejections(daemon))
        cfg.write_text(text)
        if delivery == "SIGHUP":
            daemon.signal(signal.SIGHUP)
        wait_until(lambda seen=seen: len(rejections(daemon)) > seen, timeout=CONVERGE,
                   what=f"{kind}: rejection logged")
        new = rejections(daemon)[seen:]
        assert any(str(cfg) in str(r.get("error")) and says in str(r.get("error"))
                   for r in new), (kind, new)
        assert daemon.get("/healthz")[0] == 200 and daemon.get("/readyz")[0] == 200, kind
        ns = namespace_factory(prefix=f"live-{unique}-{n}")  # matched by the old config only
        wait_for_sa(core, ns)
        wait_until(lambda ns=ns: has_secret_and_ref(core, ns), timeout=CONVERGE,
                   what=f"{kind}: a new namespace synced with the old config")
    assert daemon.proc.poll() is None
    assert (daemon.metric("reconcile_errors_total", reason="config") or 0) >= len(BROKEN)
    assert not daemon.metric("reconcile_errors_total", reason="internal")


def rejections(daemon: DaemonProcess) -> list[dict[str, object]]:
    return [r for r in daemon.log_records()
            if str(r.get("msg", "")).startswith("config rejected")]


def test_every_sighup_rereads_the_config(
    creds: dict[str, Any], unique: str, tmp_path: Path,  # noqa: F811
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    cfg = tmp_path / "live.yaml"
    cfg.write_text(daemon_config(creds["vault"], creds["aws"], unique))
    daemon = start_daemon(cfg)
    daemon.wait_ready()

    def loaded() -> int:
        return sum(r.get("msg") == "config loaded" for r in daemon.log_records())

    for n in range(1, 6):
        daemon.signal(signal.SIGHUP)
        wait_until(lambda n=n: loaded() >= n, timeout=CONVERGE, what=f"reload {n} after SIGHUP")
    assert daemon.get("/healthz")[0] == 200
