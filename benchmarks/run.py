"""Benchmark pullsecret-syncer against the real stack and print (and write as JSON) a table of
request counts, latencies, memory and CPU beside their targets and the protocol minimum.

    python3 benchmarks/run.py [--namespaces N] [--quick] [--big] [--json PATH]
    python3 benchmarks/run.py --pods 1000 [--namespaces N] [--json PATH]   # recyclePods memory

The daemon runs as `pullsecret-syncer run` in a subprocess; every request figure is counted by
proxies in front of kube-apiserver, OpenBao and moto. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import ecr, harness, pods, scenarios


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    mem = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": round(int(mem) / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg()}


def row(metric: str, target: str, measured: float | str, minimum: float | str | None, *,
        met: bool | None, ratio: float | None = None) -> dict[str, Any]:
    if ratio is None and isinstance(measured, int | float) and isinstance(minimum, int | float):
        ratio = measured / minimum if minimum else (1.0 if measured == minimum else None)
    return {"metric": metric, "target": target, "measured": measured, "minimum": minimum,
            "ratio": ratio, "met": met}


def build_rows(r: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    n, c = args.namespaces, args.credentials
    rows: list[dict[str, Any]] = []
    idle = r["idle"]
    rows.append(row(f"backend reads per refresh interval (N={n}, C={c})", f"= C ({c})",
                    idle["backend_reads_per_interval"], c,
                    met=idle["backend_reads"] == c * idle["intervals"]))
    cold = r["cold_start"]
    t = cold["traffic"]
    rows.append(row(f"writes to converge {n} fresh namespaces", f"= 2N ({2 * n})",
                    t["total_writes"], 2 * n, met=t["total_writes"] == 2 * n))
    rows.append(row("  of those: retries (failed precondition)", "report", t["retries"], 0,
                    met=None))
    lists = sum(t["lists"].values())
    rows.append(row("reads to converge: list pages (4 lists) / per-namespace GETs",
                    "constant lists, 0 GET", f"{lists} / {t['namespaced_gets']}", 4,
                    ratio=lists / 4, met=t["namespaced_gets"] == 0))
    rot = r["rotation"]
    rt = rot["traffic"]
    rows.append(row(f"writes after rotating a credential used by all {n}", f"= N ({n})",
                    rt["total_writes"], n, met=rt["total_writes"] == n))
    idle_writes = idle["kube"]["total_writes"]
    rows.append(row(f"writes during {idle['intervals']} idle refresh intervals", "0",
                    idle_writes, 0, met=idle_writes == 0))
    new = r["new_namespaces"]
    nt = new["traffic"]
    rows.append(row(f"writes for {new['count']} namespaces created live (all attempts)",
                    f"= 2x{new['count']}", nt["total_writes"], 2 * new["count"],
                    met=nt["first_attempt_writes"] == 2 * new["count"]))
    rows.append(row("  of those: retries (a concurrent writer raced the SA patch)", "report",
                    nt["retries"], 0, met=None))
    rows.append(row(f"cold start to converged, N={n}, --kube-qps {args.kube_qps:g}", "≤ 60 s",
                    round(cold["seconds_to_converged"], 2),
                    round(cold["protocol_min_seconds"], 2),
                    met=cold["seconds_to_converged"] <= 60 if n >= 1000 else None))
    rows.append(row(f"new namespace → Secret + SA patched, p50 ({new['count']} while {n} exist)",
                    "report", round(new["latency_p50"], 3), round(new["sa_appears_p50"], 3),
                    met=None))
    rows.append(row("new namespace → Secret + SA patched, p99", "≤ 1 s",
                    round(new["latency_p99"], 3), round(new["sa_appears_p99"], 3),
                    met=new["latency_p99"] <= 1.0))
    rows.append(row(f"rotation → all {n} Secrets updated", f"≤ {rot['target_seconds']:.1f} s "
                    f"(refresh {args.refresh:g} s + N/qps)", round(rot["seconds"], 2),
                    round(rot["protocol_min_seconds"], 2),
                    met=rot["seconds"] <= rot["target_seconds"]))
    big = r.get("big")
    if big:
        rows.append(row(f"peak RSS, {big['namespaces']} namespaces + {big['service_accounts']} "
                        "SAs watched", "≤ 150 MiB", round(big["peak_rss_mib"], 1), None,
                        met=big["peak_rss_mib"] <= 150))
    rows.append(row(f"peak RSS, {n} namespaces (main run)", "report",
                    round(r["peak_rss_mib_main"], 1), None, met=None))
    cpu = r["cpu"]
    rows.append(row("CPU seconds per idle hour (refresh 1m, resync 10m)", "report",
                    round(cpu["per_hour_defaults"], 1), None, met=None))
    e = r.get("ecr")
    if e:
        ours, fixed = e["per_24h"]["ours"], e["per_24h"]["fixed_interval_1m"]
        m = e["namespaces"]
        rows.append(row(f"ECR renewal: token calls / Secret writes (one token, {m} namespaces)",
                        "1 / N", f"{e['token_calls_per_renewal']} / {e['writes_per_renewal']}",
                        f"1 / {m}", met=(e["token_calls_per_renewal"], e["writes_per_renewal"])
                        == (1, m)))
        rows.append(row("ECR per 24 h, 12 h tokens: backend calls, ours vs every 1m",
                        "report", round(ours["backend_calls"], 1),
                        round(fixed["backend_calls"]), met=None,
                        ratio=ours["backend_calls"] / fixed["backend_calls"]))
        rows.append(row("ECR per 24 h, 12 h tokens: Kubernetes writes, ours vs every 1m",
                        "report", round(ours["kube_writes"]), round(fixed["kube_writes"]),
                        met=None, ratio=ours["kube_writes"] / fixed["kube_writes"]))
    rs = r["restart"]
    rows.append(row("writes when restarted over a converged cluster", "0",
                    rs["start_traffic"]["total_writes"], 0,
                    met=rs["start_traffic"]["total_writes"] == 0))
    return rows


def cpu_model(r: dict[str, Any], credentials: int) -> dict[str, Any]:
    """Split idle CPU into a base rate, a cost per backend read and a cost per resync, then
    extrapolate to an hour with the defaults (refresh 1m, resync 10m)."""
    base = r["base_cpu"]["cpu_seconds"] / r["base_cpu"]["window_seconds"]
    idle = r["idle"]
    per_read = max(0.0, idle["cpu_seconds"] - base * idle["window_seconds"]) / max(
        1, idle["backend_reads"])
    rs = r["restart"]
    per_resync = max(0.0, rs["cpu_seconds"] - base * rs["window_seconds"]) / max(1, rs["resyncs"])
    return {"base_cpu_per_second": base, "cpu_per_backend_read": per_read,
            "cpu_per_resync": per_resync,
            "per_hour_defaults": base * 3600 + per_read * credentials * 60 + per_resync * 6,
            "per_hour_at_benchmark_refresh": idle["cpu_seconds_per_hour"]}


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("metric", "target", "measured", "protocol min", "ratio", "")
    lines = [(r["metric"], r["target"], fmt(r["measured"]), fmt(r["minimum"]), fmt(r["ratio"]),
              {True: "ok", False: "MISS", None: ""}[r["met"]]) for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
    for line in [head, tuple("-" * w for w in widths), *lines]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--namespaces", type=int, default=None, help="N (default 1000; quick: 50)")
    p.add_argument("--credentials", type=int, default=2, help="C, alternating Vault and AWS")
    p.add_argument("--quick", action="store_true", help="N=50, short windows, the CI size")
    p.add_argument("--big", action="store_true",
                   help="also grow to 10 000 namespaces / 20 000 SAs for peak RSS (~10 min)")
    p.add_argument("--big-namespaces", type=int, default=10_000)
    p.add_argument("--big-accounts", type=int, default=20_000)
    p.add_argument("--kube-qps", type=float, default=50.0)
    p.add_argument("--kube-burst", type=int, default=40)
    p.add_argument("--refresh", type=float, default=None, help="refresh interval, s (10; quick 2)")
    p.add_argument("--new-namespaces", type=int, default=None, help="200; quick 10")
    p.add_argument("--gap", type=float, default=0.25, help="seconds between new namespaces")
    p.add_argument("--idle-intervals", type=int, default=3)
    p.add_argument("--cpu-window", type=float, default=None, help="seconds (60; quick 10)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--pods", type=int, default=None,
                   help="run only the recyclePods memory scenario with this many Pending Pods")
    args = p.parse_args(argv)
    quick = args.quick
    args.namespaces = args.namespaces or (50 if quick else 1000)
    args.refresh = args.refresh or (2.0 if quick else 10.0)
    args.new_namespaces = args.new_namespaces or (10 if quick else 200)
    args.cpu_window = args.cpu_window or (10.0 if quick else 60.0)
    return args


def run_pods(stack: harness.Stack, args: argparse.Namespace) -> dict[str, Any]:
    """`--pods P`: peak RSS with recyclePods off and on, N namespaces and P Pending Pods."""
    n, p = args.namespaces, args.pods
    bench = scenarios.Bench(stack, credentials=args.credentials)
    bench.seed()
    print(f"# {n} namespaces, {p} Pending Pods, recyclePods off then on …", file=sys.stderr,
          flush=True)
    r: dict[str, Any] = {"prefix": bench.prefix, "pods": pods.pending_pods(
        bench, namespaces=n, pods=p, qps=args.kube_qps, burst=args.kube_burst)}
    res = r["pods"]
    r["rows"] = [
        row(f"peak RSS, {n} namespaces + {p} Pending Pods, recyclePods off", "report",
            round(res["off"]["peak_rss_mib"], 1), None, met=None),
        row(f"peak RSS, {n} namespaces + {p} Pending Pods watched, recyclePods on", "report",
            round(res["on"]["peak_rss_mib"], 1), None, met=None),
        row("  of that: the Pod cache and decisions", "report",
            round(res["extra_rss_mib"], 1), None, met=None),
        row("writes and evictions with recycling on (no Pod is ours to evict)", "0",
            res["on"]["writes"] + res["on"]["evictions"], 0,
            met=res["on"]["writes"] + res["on"]["evictions"] == 0),
    ]
    return r


def run(stack: harness.Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Every scenario in order on one stack; returns the results (rows included)."""
    if args.pods:
        return run_pods(stack, args)
    n = args.namespaces
    bench = scenarios.Bench(stack, credentials=args.credentials)
    bench.seed()
    bench.write_config(refresh=f"{args.refresh:g}s")
    r: dict[str, Any] = {"prefix": bench.prefix}
    print(f"# creating {n} namespaces …", file=sys.stderr, flush=True)
    r["setup"] = bench.create_namespaces(0, n)
    qps, burst = args.kube_qps, args.kube_burst
    print("# cold start …", file=sys.stderr, flush=True)
    daemon, r["cold_start"] = scenarios.cold_start(bench, n, qps=qps, burst=burst,
                                                   timeout=120 + 4 * n / qps)
    try:
        print("# idle …", file=sys.stderr, flush=True)
        r["idle"] = scenarios.idle(bench, daemon, refresh=args.refresh,
                                   intervals=args.idle_intervals)
        print("# rotation …", file=sys.stderr, flush=True)
        r["rotation"] = scenarios.rotation(bench, daemon, n, refresh=args.refresh, qps=qps,
                                           burst=burst, timeout=60 + args.refresh + 4 * n / qps)
        print(f"# {args.new_namespaces} new namespaces …", file=sys.stderr, flush=True)
        r["new_namespaces"] = scenarios.new_namespaces(bench, n, args.new_namespaces,
                                                       gap=args.gap)
        print("# base CPU …", file=sys.stderr, flush=True)
        r["base_cpu"] = scenarios.base_cpu(bench, daemon, window=args.cpu_window)
        r["peak_rss_mib_main"] = daemon.peak_rss_mib()
        r["cpu_seconds_main"] = daemon.cpu_seconds()
        r["stop_seconds"] = daemon.stop()
    finally:
        daemon.close()
    print("# restart + resync …", file=sys.stderr, flush=True)
    daemon2, r["restart"] = scenarios.restart_and_resync(
        bench, qps=qps, burst=burst, resync=max(10.0, args.cpu_window / 3),
        window=args.cpu_window)
    daemon2.stop()
    daemon2.close()
    r["cpu"] = cpu_model(r, args.credentials)
    print("# ECR token renewal …", file=sys.stderr, flush=True)
    matched = n + args.new_namespaces  # the live-created ones match the pattern too
    r["ecr"] = ecr.scenario(stack, bench.prefix, matched, qps=qps, burst=burst,
                            timeout=120 + 4 * matched / qps)
    if args.big:
        print(f"# growing to {args.big_namespaces} namespaces …", file=sys.stderr, flush=True)
        try:
            r["big"] = scenarios.big_cluster(bench, namespaces=args.big_namespaces,
                                             accounts=args.big_accounts,
                                             managed=n + args.new_namespaces, qps=qps,
                                             burst=burst, settle=30.0)
        except Exception as exc:  # keep the rest of the results
            r["big_error"] = repr(exc)
            print(f"# big cluster failed: {exc!r}", file=sys.stderr, flush=True)
    r["rows"] = build_rows(r, args)
    return r


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rt = harness.runtime.Runtime()
    harness.procs.install_sigterm_handler()
    info = machine()
    began = time.monotonic()
    try:
        stack, timings = harness.start_stack(rt)
        results = run(stack, args)
    finally:
        harness.procs.stop_all()
        rt.cleanup(keep=os.environ.get("PSS_KEEP_STACK_DIR") == "1")
    info["loadavg_end"] = os.getloadavg()
    out = {"command": " ".join(["python3", "benchmarks/run.py", *(argv or sys.argv[1:])]),
           "machine": info, "args": {k: (str(v) if isinstance(v, Path) else v)
                                     for k, v in vars(args).items()},
           "stack_start_seconds": timings, "total_seconds": time.monotonic() - began,
           **results}
    print_table(results["rows"])
    print(f"\nmachine: {info['cpus']} x {info['cpu_model']}, {info['mem_gib']} GiB; load "
          f"{info['loadavg_start'][0]:.1f} → {info['loadavg_end'][0]:.1f}; "
          f"total {out['total_seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0 if all(r["met"] is not False for r in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
