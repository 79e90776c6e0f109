"""Measure pullsecret-syncer and its peers side by side: the same N, the same refresh interval,
the same counters, one fresh stack per tool, back to back in one run.

    python3 benchmarks/peers/run.py [--quick] [--namespaces N] [--tools ours,eso,patcher]
                                    [--json PATH] [--no-render]

Peers are built (or reused) from pinned versions through the Go module proxy by build.sh; a peer
the proxy does not serve is recorded as not built, with the proxy's answer. Results go to
benchmarks/results-peers-<N>.json and the table in docs/peers.md is rendered from them
(benchmarks/peers/render.py). See docs/peers.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import harness  # noqa: E402
from benchmarks import run as our_run  # noqa: E402
from benchmarks.peers import measure, render, tools  # noqa: E402
from benchmarks.peers import world as world_mod  # noqa: E402

TOOLS = ("ours", "eso", "patcher", "replicator")
PEER_BUILDS = {"eso": "eso", "patcher": "patcher", "replicator": "replicator"}
RUNNERS = {"ours", "eso", "patcher"}  # replicator: built if served, not run (optional)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N = 100 and shorter windows")
    p.add_argument("--namespaces", type=int, default=None, help="N (default 1000; quick 100)")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, in run order")
    p.add_argument("--refresh", type=float, default=None,
                   help="refresh interval, s, the same for all tools (60 = our default 1m; "
                        "quick 10)")
    p.add_argument("--idle-intervals", type=int, default=3)
    p.add_argument("--new-namespaces", type=int, default=None, help="200; quick 20")
    p.add_argument("--gap", type=float, default=0.25, help="seconds between new namespaces")
    p.add_argument("--json", type=Path, default=None,
                   help="default benchmarks/results-peers-<N>.json")
    p.add_argument("--no-render", action="store_true", help="do not update docs/peers.md")
    args = p.parse_args(argv)
    args.namespaces = args.namespaces or (100 if args.quick else 1000)
    args.new_namespaces = args.new_namespaces or (20 if args.quick else 200)
    args.refresh = args.refresh or (10.0 if args.quick else 60.0)
    args.json = args.json or REPO / "benchmarks" / f"results-peers-{args.namespaces}.json"
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(args.tools) - set(TOOLS))
    if unknown:
        p.error(f"unknown tool(s) {', '.join(unknown)} (known: {', '.join(TOOLS)})")
    return args


def make_tool(name: str, stack: harness.Stack, home: Path | None,
              build: dict[str, Any]) -> Any:
    if name == "ours":
        return tools.Ours(stack)
    assert home is not None
    if name == "eso":
        return tools.Eso(stack, home, build)
    return tools.Patcher(stack, home, build)


def run_tool(name: str, args: argparse.Namespace, home: Path | None,
             build: dict[str, Any]) -> dict[str, Any]:
    """One tool on its own fresh stack; every scenario in order. An error is recorded and
    the figures measured so far are kept."""
    n, refresh = args.namespaces, args.refresh
    r: dict[str, Any] = {"tool": name, "loadavg_before": os.getloadavg()}
    began = time.monotonic()
    rt = harness.runtime.Runtime()
    proc: Any = None
    try:
        stack, r["stack_start_seconds"] = harness.start_stack(rt)
        w = world_mod.World(stack)
        w.seed()
        r["credentials"] = w.credentials
        r["setup"] = w.create_namespaces(0, n)
        tool = make_tool(name, stack, home, build)
        tool.prepare(w, refresh=refresh)
        r["name"], r["patches_service_accounts"] = tool.name, tool.patches_service_accounts
        r["info"] = tool.info()
        audit = harness.KubeAudit(stack.kube.audit_log, user=tool.identity)
        step = "cold start"
        try:
            print(f"# {name}: cold start, N={n} …", file=sys.stderr, flush=True)
            proc, r["cold_start"] = measure.cold_start(w, tool, audit, n,
                                                       timeout=300 + 10 * n / 50)
            step = "idle"
            print(f"# {name}: idle …", file=sys.stderr, flush=True)
            r["idle"] = measure.idle(w, proc, audit, refresh=refresh,
                                     intervals=args.idle_intervals)
            step = "rotation"
            print(f"# {name}: rotation …", file=sys.stderr, flush=True)
            r["rotation"] = measure.rotation(w, proc, audit, n,
                                             timeout=300 + 3 * refresh + 10 * n / 50)
            step = "new namespaces"
            print(f"# {name}: {args.new_namespaces} new namespaces …", file=sys.stderr,
                  flush=True)
            r["new_namespaces"] = measure.new_namespaces(
                w, tool, audit, n, args.new_namespaces, gap=args.gap,
                timeout=120 + 3 * refresh + args.new_namespaces)
            step = "foreign writer"
            print(f"# {name}: foreign writer …", file=sys.stderr, flush=True)
            r["foreign_writer"] = measure.foreign_writer(w, tool, w.ns(0))
            r["peak_rss_mib"] = measure.peak_rss_mib(proc.pid)
            r["cpu_seconds_total"] = measure.cpu_seconds(proc.pid)
        except Exception as exc:
            r["error"] = f"{step}: {exc!r}"
            r["error_log_tail"] = proc_tail(proc or getattr(tool, "process", None)
                                            or getattr(tool, "daemon", None))
            print(f"# {name}: {step} failed: {exc!r}", file=sys.stderr, flush=True)
            traceback.print_exc()
        finally:
            if proc is not None:
                proc.stop()
                if hasattr(proc, "close"):
                    proc.close()
            harness.stop_stack(stack)
    finally:
        harness.procs.stop_all()
        rt.cleanup(keep=os.environ.get("PSS_KEEP_STACK_DIR") == "1")
    r["loadavg_after"] = os.getloadavg()
    r["seconds"] = time.monotonic() - began
    return r


def proc_tail(proc: Any) -> str:
    if proc is None:
        return ""
    if hasattr(proc, "tail"):
        return str(proc.tail())[-3000:]
    return str(proc.proc.output())[-3000:]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    harness.procs.install_sigterm_handler()
    began = time.monotonic()
    out: dict[str, Any] = {
        "command": " ".join(["python3", "benchmarks/peers/run.py", *(argv or sys.argv[1:])]),
        "machine": our_run.machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "kubernetes": harness.kube_stack.binary_version(
            harness.kube_stack.find_binaries().apiserver),
        "builds": {}, "tools": []}
    homes: dict[str, Path | None] = {}
    for name in args.tools:
        if name in PEER_BUILDS:
            print(f"# building {name} …", file=sys.stderr, flush=True)
            homes[name], out["builds"][name] = tools.build(PEER_BUILDS[name])
            print(f"# {name}: {out['builds'][name]}", file=sys.stderr, flush=True)
    for name in args.tools:
        build = out["builds"].get(name, {})
        if name != "ours" and not build.get("built"):
            out["tools"].append({"tool": name, "not_run": f"not built: {build.get('why')}"})
            continue
        if name not in RUNNERS:
            out["tools"].append({"tool": name, "not_run": "built; no runner (optional peer)"})
            continue
        out["tools"].append(run_tool(name, args, homes.get(name), build))
        args.json.write_text(json.dumps(out, indent=2, default=str))  # keep what we have
    out["machine"]["loadavg_end"] = os.getloadavg()
    out["total_seconds"] = time.monotonic() - began
    args.json.write_text(json.dumps(out, indent=2, default=str))
    print(render.table(out))
    print(f"wrote {args.json} ({out['total_seconds']:.0f} s)")
    if not args.no_render:
        render.update_docs(REPO / "docs" / "peers.md", sorted(
            REPO.glob("benchmarks/results-peers-*.json")))
    return 1 if any("error" in t for t in out["tools"]) else 0


if __name__ == "__main__":
    sys.exit(main())
