"""The peer benchmark's harness still parses its inputs and renders its table, without building
or running any peer (the benchmark itself is `make bench-peers`, too slow for CI)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks.peers import render, run, tools
from benchmarks.peers import world as world_mod

REPO = Path(__file__).resolve().parents[2]


def fixture_results() -> dict[str, Any]:
    def tool(name: str, *, sas: bool, reads: float, writes: float, lost: int | None,
             uid_changed: int) -> dict[str, Any]:
        return {
            "tool": name, "name": name, "patches_service_accounts": sas,
            "info": {"version": "v1", "commit": "abc"},
            "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [2.0, 1.0, 1.0], "seconds": 60,
            "cold_start": {"seconds": 3.0, "traffic": {"total_writes": 20}},
            "idle": {"backend_reads_per_interval": reads, "backend_requests_per_interval": reads,
                     "writes_per_interval": writes, "kube_reads_per_interval": 0.0,
                     "cpu_seconds_per_hour": 4.0},
            "rotation": {"n": 10, "seconds": 1.5, "traffic": {"total_writes": 10},
                         "secret_writes": 10, "uid_changed": uid_changed},
            "new_namespaces": {"secret_p50": 0.1, "secret_p99": 0.2,
                               **({"sa_p50": 0.1, "sa_p99": 0.3} if sas else {})},
            "peak_rss_mib": 60.0 if name == "ours" else 40.0,
            "foreign_writer": ({"applicable": True, "foreign_lost": lost} if sas
                               else {"applicable": False}),
        }

    return {
        "command": "python3 benchmarks/peers/run.py --quick", "started": "now",
        "kubernetes": "v1.37.2", "total_seconds": 120,
        "machine": {"cpus": 2, "cpu_model": "x", "mem_gib": 1.0},
        "args": {"namespaces": 10, "refresh": 10.0, "idle_intervals": 3,
                 "new_namespaces": 2, "gap": 0.25},
        "tools": [
            tool("ours", sas=True, reads=2, writes=0, lost=0, uid_changed=0),
            tool("eso", sas=False, reads=20, writes=10, lost=None, uid_changed=0),
            {"tool": "patcher", "not_run": "not built: 403 from the module proxy"},
        ],
    }


def test_quick_means_a_hundred_namespaces_and_unknown_tools_are_refused() -> None:
    args = run.parse(["--quick"])
    assert (args.namespaces, args.new_namespaces, args.refresh) == (100, 20, 10.0)
    assert args.json.name == "results-peers-100.json"
    full = run.parse([])
    assert (full.namespaces, full.refresh) == (1000, 60.0)
    with pytest.raises(SystemExit):
        run.parse(["--tools", "ours,bogus"])


def test_every_peer_is_pinned_and_the_build_script_parses() -> None:
    for name, pin in tools.pins().items():
        assert {"module", "version", "package", "tags", "why"} <= set(pin), name
        assert pin["version"], name
    subprocess.run(["bash", "-n", str(REPO / "benchmarks/peers/build.sh")], check=True)


def test_the_table_shows_ratios_and_says_what_a_peer_cannot_do() -> None:
    text = render.table(fixture_results())
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()}
    assert "| 2 | 20 | 10x |" in rows["backend reads per refresh interval (idle)"]
    assert "∞ (ours 0)" in rows["writes per idle refresh interval"]
    assert "does not patch SAs" in rows["new namespace → SA patched, p50 s"]
    assert "does not patch SAs" in rows["foreign writer: entries lost of 50"]
    assert "patcher" not in text.splitlines()[0]  # not built: no column, a note instead
    context = render.context(fixture_results())
    assert "patcher**: not measured — not built: 403" in context


def test_a_figure_where_a_peer_beats_us_is_listed() -> None:
    won = render.wins(fixture_results())
    assert won == ["eso v1 beat us on *peak RSS, MiB*: 40 vs 60"]


def test_rendering_replaces_only_the_generated_block(tmp_path: Path) -> None:
    results = tmp_path / "results-peers-10.json"
    results.write_text(json.dumps(fixture_results()))
    doc = tmp_path / "peers.md"
    doc.write_text(f"# Peers\nprose before\n{render.BEGIN}\nold\n{render.END}\nprose after\n")
    render.update_docs(doc, [results])
    text = doc.read_text()
    assert text.startswith("# Peers\nprose before\n")
    assert text.endswith(f"{render.END}\nprose after\n")
    assert "old" not in text and "### results-peers-10.json" in text
    render.update_docs(doc, [results])  # idempotent
    assert doc.read_text() == text


def test_the_committed_page_is_what_the_committed_results_render_to() -> None:
    paths = sorted(REPO.glob("benchmarks/results-peers-*.json"))
    page = (REPO / "docs" / "peers.md").read_text()
    block = page[page.index(render.BEGIN):page.index(render.END) + len(render.END)]
    assert block == render.render(paths)


def _secret(auths: dict[str, Any], *, kind: str = "kubernetes.io/dockerconfigjson") -> dict[
        str, Any]:
    raw = json.dumps({"auths": auths}).encode()
    return {"type": kind, "data": {".dockerconfigjson": base64.b64encode(raw).decode()}}


def test_a_secret_is_current_only_with_every_credential_at_its_value() -> None:
    auth = base64.b64encode(b"u:p").decode()
    want = [("r0.example", "u", "p")]
    assert world_mod.current(_secret({"r0.example": {"username": "u", "password": "p",
                                                     "auth": auth}}), want)
    assert not world_mod.current(_secret({"r0.example": {"username": "u", "password": "old"}}),
                                 want)
    assert not world_mod.current(_secret({"r0.example": {"username": "u", "password": "p",
                                                         "auth": "eDp5"}}), want)
    assert not world_mod.current(_secret({"r0.example": {"username": "u", "password": "p"}},
                                         kind="Opaque"), want)
    assert not world_mod.current({"type": "kubernetes.io/dockerconfigjson",
                                  "data": {".dockerconfigjson": "bm90IGpzb24="}}, want)


class _World:
    prefix, credentials = "p1", 2

    def path(self, i: int) -> str:
        return f"bench/p1/c{i}"

    def registry(self, i: int) -> str:
        return f"r{i}.p1.example"


def test_the_eso_template_reads_each_credential_once_and_renders_both_registries() -> None:
    ces = tools.cluster_external_secret(_World(), refresh=10)  # type: ignore[arg-type]
    spec = ces["spec"]["externalSecretSpec"]
    assert ces["spec"]["refreshTime"] == spec["refreshInterval"] == "10s"
    assert [d["extract"]["key"] for d in spec["dataFrom"]] == ["bench/p1/c0", "bench/p1/c1"]
    template = spec["target"]["template"]
    assert template["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(template["data"][".dockerconfigjson"])["auths"]
    assert sorted(auths) == ["r0.p1.example", "r1.p1.example"]
    assert auths["r1.p1.example"]["password"] == "{{ .c1_password }}"
    keys = {m for d in spec["dataFrom"] for m in re.findall(r"c\d_", d["rewrite"][0]["regexp"]
                                                             ["target"])}
    assert keys == {"c0_", "c1_"}


def test_the_in_cluster_sandbox_mounts_token_and_ca_at_the_standard_path(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("CA")
    argv = tools.in_cluster_command(["patcher"], token="TOKEN", ca_file=ca,
                                    scratch=tmp_path / "s")
    assert argv[:2] == ["unshare", "-m"] and argv[-1] == "patcher"
    sa = tmp_path / "s" / "serviceaccount"
    assert (sa / "token").read_text() == "TOKEN" and (sa / "ca.crt").read_text() == "CA"
    assert tools.SA_DIR in argv[4] and "tmpfs" in argv[4]
