"""Command line: argument parsing, sub-commands and exit codes (SPEC §2). Wiring only.

Exit codes: 0 success, 1 something failed (the rest was still done), 2 usage or config error,
130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import syncer
from backends import base
from syncer import config, credentials, engine, kube, observability, plan

log = logging.getLogger("syncer")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Terminated(BaseException):
    """SIGTERM arrived during a one-shot command (a BaseException, like KeyboardInterrupt, so
    that no `except Exception` on the way swallows it)."""


def _kube_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, $KUBECONFIG, "
                   "~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")


def _log_flags(p: argparse.ArgumentParser, *, default_format: str = "text") -> None:
    p.add_argument("--log-format", choices=["json", "text"], default=default_format)
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pullsecret-syncer", description=(
        "Sync container-registry credentials from Vault / AWS Secrets Manager into "
        "dockerconfigjson Secrets and ServiceAccount imagePullSecrets."))
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True)
    _kube_flags(run)
    run.add_argument("--leader-elect", action="store_true")
    run.add_argument("--leader-election-namespace", default=None)
    run.add_argument("--http-addr", default="0.0.0.0:8080")
    _log_flags(run)
    run.add_argument("--kube-qps", type=float, default=20.0)
    run.add_argument("--kube-burst", type=int, default=40)
    run.add_argument("--resync-interval", type=config.parse_duration, default=600.0)

    sync = sub.add_parser("sync", help="one full reconcile pass, then exit")
    sync.add_argument("--config", required=True)
    _kube_flags(sync)
    _log_flags(sync)
    sync.add_argument("--kube-qps", type=float, default=20.0)
    sync.add_argument("--kube-burst", type=int, default=40)

    pl = sub.add_parser("plan", help="print what sync would do; writes nothing")
    pl.add_argument("--config", required=True)
    _kube_flags(pl)
    pl.add_argument("--output", choices=["text", "json"], default="text")
    _log_flags(pl, default_format="text")

    chk = sub.add_parser("check", help="validate the config (--connect: also read credentials)")
    chk.add_argument("--config", required=True)
    chk.add_argument("--connect", action="store_true",
                     help="log in to every backend and read every credential")
    _log_flags(chk)

    sub.add_parser("version", help="print the version")
    return top


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(f"error: internal error ({type(exc).__name__}); run with --log-level debug "
              "for details", file=sys.stderr)
        return EXIT_FAILED


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    if args.command == "version":
        print(f"pullsecret-syncer {syncer.__version__}")
        return EXIT_OK
    observability.setup_logging(fmt=args.log_format, level=args.log_level)
    try:
        cfg = config.load(args.config)
        opened = credentials.open_backends(cfg)
    except config.ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    if args.command == "run":
        from syncer import daemon  # the daemon's machinery is needed by `run` alone

        return daemon.main(cfg, args, backends=opened)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if args.command == "check":
            return _check(cfg, opened, connect=args.connect)
        return _one_pass(cfg, opened, args, dry_run=args.command == "plan")
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        credentials.close_backends(opened)


def _check(cfg: config.Config, opened: dict[str, base.Backend], *, connect: bool) -> int:
    print(f"config {cfg.path}: ok ({len(cfg.backends)} backends, {len(cfg.credentials)} "
          f"credentials, {len(cfg.mappings)} mappings)")
    if not connect:
        return EXIT_OK
    status = EXIT_OK
    for name in sorted(opened):
        try:
            opened[name].check()
        except base.BackendError as exc:
            print(f"FAIL backend {name!r}: {exc}")
            status = EXIT_FAILED
            continue
        print(f"ok   backend {name!r}: connected")
    for name in sorted(cfg.credentials):
        spec = cfg.credentials[name]
        try:
            auths = credentials.read(spec, opened[spec.backend])
        except credentials.CredentialError as exc:
            print(f"FAIL {exc}")
            status = EXIT_FAILED
            continue
        print(f"ok   credential {name!r} ({spec.backend}): registries "
              f"{', '.join(sorted(auths))}")
    return status


def _one_pass(cfg: config.Config, opened: dict[str, base.Backend], args: argparse.Namespace,
              *, dry_run: bool) -> int:
    metrics = observability.Metrics()
    try:
        kconf = kube.load_configuration(kubeconfig=args.kubeconfig, context=args.context)
    except Exception as exc:
        print(f"error: cannot load Kubernetes configuration: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_USAGE
    client = kube.Kube(kconf, qps=getattr(args, "kube_qps", 20.0),
                       burst=getattr(args, "kube_burst", 40), on_write=metrics.record_write)
    try:
        readings = credentials.read_all(cfg, opened, metrics=metrics)
        good = {n: r.auths for n, r in readings.items() if r.auths is not None}
        try:
            view = engine.observe(client, cfg)
        except kube.KubeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        eng = engine.Engine(None if dry_run else client, metrics=metrics)
        report = eng.reconcile(cfg, good, view, dry_run=dry_run)
    finally:
        client.close()
    failed_creds = [r for r in readings.values() if r.error is not None]
    if dry_run:
        if args.output == "json":
            print(plan.to_json(tuple(report.planned)))
        else:
            for action in report.planned:
                print(action.describe())
    for reading in failed_creds:
        print(f"error: {reading.error}", file=sys.stderr)
    for failure in report.failures:
        print(f"error: {failure}", file=sys.stderr)
    for c in report.conflicts:
        print(f"conflict: secret {c.namespace}/{c.name} exists and is not managed by "
              f"pullsecret-syncer (mapping {c.mapping!r}); left alone", file=sys.stderr)
    if not dry_run:
        print(f"sync: {len(report.applied)} writes, {len(report.failures)} failed, "
              f"{len(report.conflicts)} conflicts, {len(report.blocked)} blocked, "
              f"{len(failed_creds)} credentials failing", file=sys.stderr)
    return EXIT_OK if report.ok and not failed_creds else EXIT_FAILED
