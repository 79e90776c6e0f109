"""Command line: flags to settings, sub-commands, exit codes (docs/operations.md). Wiring only.

Exit codes: 0 success, 1 something failed (the rest was still done), 2 usage or config error,
130/143 interrupted by SIGINT/SIGTERM. A usage error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

import syncer
from backends import base
from syncer import config
from syncer.core import model, settings
from syncer.credentials import fetch as credentials
from syncer.credentials import publish
from syncer.decide import fight, plan, progress, recycle
from syncer.kube import api, client, errors
from syncer.present import actions as render
from syncer.present import display
from syncer.reconcile import engine, evict, observe, uninstall
from syncer.telemetry import observability

log = logging.getLogger("syncer")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Terminated(BaseException):
    """SIGTERM arrived during a one-shot command (a BaseException, like KeyboardInterrupt, so
    that no `except Exception` on the way swallows it)."""


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: `pullsecret-syncer run: --kube-qps: …`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _http_addr(text: str) -> settings.HttpAddress:
    try:
        return settings.parse_http_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> float:
    try:
        return config.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _instance(text: str) -> str:
    try:
        return str(config.check_instance(text))
    except ValueError:
        raise argparse.ArgumentTypeError(config.INSTANCE_MSG) from None


def _kube_flags(p: argparse.ArgumentParser, *, limits: bool = True) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, $KUBECONFIG, "
                   "~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    if limits:
        p.add_argument("--kube-qps", type=_positive_float, default=settings.DEFAULT_QPS,
                       help="write requests per second (default %(default)s)")
        p.add_argument("--kube-burst", type=_positive_int, default=settings.DEFAULT_BURST,
                       help="write burst (default %(default)s)")


def _log_flags(p: argparse.ArgumentParser, *, default_format: str = "text") -> None:
    p.add_argument("--log-format", choices=["json", "text"], default=default_format)
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])


def _output_flags(p: argparse.ArgumentParser, *, quiet: bool) -> None:
    p.add_argument("--output", choices=["text", "json"], default="text",
                   help="text lines, or JSON (docs/cli-output.md)")
    if quiet:
        p.add_argument("--quiet", action="store_true",
                       help="print only errors and the summary, no line per write")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="pullsecret-syncer", description=(
        "Sync container-registry credentials from Vault / AWS into dockerconfigjson Secrets "
        "and ServiceAccount imagePullSecrets."))
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND",
                             parser_class=_Parser)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True)
    _kube_flags(run)
    run.add_argument("--leader-elect", action="store_true")
    run.add_argument("--leader-election-namespace", default=None)
    run.add_argument("--http-addr", type=_http_addr, default=settings.DEFAULT_HTTP_ADDR)
    _log_flags(run)
    run.add_argument("--resync-interval", type=_duration,
                     default=settings.DEFAULT_RESYNC_SECONDS)

    for name, text in (("sync", "one full reconcile pass, then exit"),
                       ("plan", "print what sync would do; writes nothing")):
        one = sub.add_parser(name, help=text)
        one.add_argument("--config", required=True)
        _kube_flags(one)
        _output_flags(one, quiet=name == "sync")
        _log_flags(one)

    chk = sub.add_parser("check", help="validate the config (--connect: also read credentials)")
    chk.add_argument("--config", required=True)
    chk.add_argument("--connect", action="store_true",
                     help="log in to every backend and read every credential")
    _log_flags(chk)

    uni = sub.add_parser("uninstall", help="remove what one installation wrote, cluster-wide")
    _kube_flags(uni)
    which = uni.add_mutually_exclusive_group()
    which.add_argument("--instance", type=_instance, default="default",
                       help="the installation to remove (its config's `instance`; default "
                       "%(default)s)")
    which.add_argument("--all-instances", action="store_true",
                       help="remove what every installation wrote")
    uni.add_argument("--dry-run", action="store_true", help="print what would be removed")
    _output_flags(uni, quiet=True)
    _log_flags(uni)

    sub.add_parser("version", help="print the version")
    return top


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(f"error: internal error ({type(exc).__name__}); run with --log-level debug "
              "for details", file=sys.stderr)
        return EXIT_FAILED


def kube_settings(args: argparse.Namespace) -> settings.KubeSettings:
    return settings.KubeSettings(
        kubeconfig=args.kubeconfig, context=args.context,
        qps=getattr(args, "kube_qps", settings.DEFAULT_QPS),
        burst=getattr(args, "kube_burst", settings.DEFAULT_BURST))


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    if args.command == "version":
        print(f"pullsecret-syncer {syncer.__version__}")
        return EXIT_OK
    observability.setup_logging(fmt=args.log_format, level=args.log_level)
    if args.command in ("sync", "uninstall") and args.log_level != "debug":
        # each applied write is printed on stdout; its info log line would say it twice
        logging.getLogger("syncer.reconcile").setLevel(logging.WARNING)
    if args.command == "uninstall":
        return _guarded(lambda: _uninstall(args))
    try:
        cfg = config.load(args.config)
        opened = credentials.open_backends(cfg)
    except config.ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    if args.command == "run":
        from syncer.run import command  # the daemon's machinery is needed by `run` alone

        return command.main(settings.RunSettings(
            config_path=Path(args.config), kube=kube_settings(args),
            leader_elect=args.leader_elect,
            leader_election_namespace=args.leader_election_namespace,
            http=args.http_addr, resync_interval=args.resync_interval,
        ), cfg, backends=opened)
    try:
        if args.command == "check":
            return _guarded(lambda: _check(cfg, opened, connect=args.connect))
        return _guarded(lambda: _one_pass(cfg, opened, args, dry_run=args.command == "plan"))
    finally:
        credentials.close_backends(opened)


def _guarded(command: Callable[[], int]) -> int:
    """Run a one-shot command with SIGTERM/SIGINT turned into exit codes 143/130."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return command()
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)


def _display(args: argparse.Namespace) -> display.Display:
    """Per-write lines and progress of `sync`/`uninstall` (docs/cli-output.md)."""
    return display.Display(command=args.command, fmt=args.output,
                           quiet=getattr(args, "quiet", False),
                           qps=args.kube_qps, burst=args.kube_burst)


def _uninstall(args: argparse.Namespace) -> int:
    cluster = _connect(args)
    out = _display(args)
    try:
        with out:
            report = uninstall.run(cluster, metrics=observability.Metrics(),
                                   dry_run=args.dry_run, on_planned=out.planned,
                                   on_applied=out.applied,
                                   instance=None if args.all_instances else args.instance)
    except errors.KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        cluster.close()
    shown = report.planned if args.dry_run else report.applied
    if args.dry_run:
        for action in shown:
            out.listed(action)
    for failure in report.failures:
        print(f"error: {failure}", file=sys.stderr)
    accounts = sum(isinstance(a, plan.PatchServiceAccount) for a in shown)
    released = sum(isinstance(a, plan.ReleaseSecret) for a in shown)
    done = ("would unpatch", "would delete", "would hand back") if args.dry_run else (
        "unpatched", "deleted", "handed back")
    handed = f", {done[2]} {released} adopted secrets" if released else ""
    out.summary(f"uninstall: {done[0]} {accounts} serviceaccounts, {done[1]} "
                f"{len(shown) - accounts - released} secrets{handed}, "
                f"{len(report.failures)} failed",
                {"dry_run": args.dry_run, "serviceaccounts": accounts,
                 "secrets": len(shown) - accounts - released, "released": released,
                 "failed": len(report.failures)})
    return EXIT_OK if not report.failures else EXIT_FAILED


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
    gate = publish.VerifyGate()
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
        for registry, outcome in gate.outcomes(spec, auths).items():
            mark = {"ok": "ok  ", "rejected": "FAIL", "unreachable": "WARN"}[outcome.result]
            print(f"{mark} verify {name!r} at {registry}: {outcome.result} ({outcome.detail})")
            if outcome.result == "rejected":
                status = EXIT_FAILED
    return status


def _connect(args: argparse.Namespace) -> api.ClusterAPI:
    try:
        return client.connect(kube_settings(args))
    except errors.ConfigurationError as exc:
        raise UsageError(f"error: {exc}") from None


def _one_pass(cfg: config.Config, opened: dict[str, base.Backend], args: argparse.Namespace,
              *, dry_run: bool) -> int:
    metrics = observability.Metrics()
    cluster = _connect(args)
    out = _display(args)  # `plan` writes nothing: its display shows nothing
    try:
        gate = publish.VerifyGate(metrics=metrics) if not dry_run else None
        readings = credentials.read_all(cfg, opened, metrics=metrics, gate=gate)
        good = {n: r.auths for n, r in readings.items() if r.auths is not None}
        try:
            view = observe.observe(cluster, cfg)
        except errors.KubeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        with out:
            eng = engine.Engine(cluster, metrics=metrics, on_planned=out.planned,
                                on_applied=out.applied)
            report = eng.reconcile(cfg, good, view, dry_run=dry_run)
        recycled = evict.one_shot(  # after the pass's writes, against what they left
            cluster, cfg, good, view, report.planned if dry_run else report.applied,
            metrics=metrics, found=eng.findings, dry_run=dry_run)
        for eviction in recycled.evicted:
            out.applied(eviction)  # its line, like every write of the pass
        fights = _contested(cluster, view, report.planned) if dry_run else []
    finally:
        cluster.close()
    failed_creds = [r for r in readings.values() if r.error is not None]
    if dry_run:
        if args.output == "json":
            print(render.to_json((*report.planned, *recycled.planned)))
        else:
            for action in (*report.planned, *recycled.planned):
                print(render.describe(action))
        sys.stdout.flush()  # the lines come before the stderr lines that follow, in a pipe too
    for reading in failed_creds:
        print(f"error: {reading.error}", file=sys.stderr)
    for failure in report.failures:
        print(f"error: {failure}", file=sys.stderr)
    for c in report.conflicts:
        print(f"conflict: secret {c.namespace}/{c.name} exists and is not managed by "
              f"pullsecret-syncer (mapping {c.mapping!r}); left alone", file=sys.stderr)
    display.report_recycling(recycled, dry_run=dry_run)
    for ns, name, manager in fights if dry_run else []:  # a finding, like a conflict: not a
        print(fight.describe(ns, name, manager), file=sys.stderr)  # write, so not on stdout
    if dry_run:  # stdout stays the `plan` action lines (or the JSON list)
        print(progress.plan_summary(report.planned, conflicts=len(report.conflicts),
                                    blocked=len(report.blocked), qps=args.kube_qps,
                                    burst=args.kube_burst), file=sys.stderr)
    else:
        out.summary(
            f"sync: {len(report.applied)} writes, {len(report.failures)} failed, "
            f"{len(report.conflicts)} conflicts, {len(report.blocked)} blocked, "
            f"{len(failed_creds)} credentials failing",
            {"writes": len(report.applied), "failed": len(report.failures),
             "conflicts": len(report.conflicts), "blocked": len(report.blocked),
             "credentials_failing": len(failed_creds),
             "actions": dict(progress.counts(report.applied)),
             **({"pods": recycled.counts()} if recycle.enabled(cfg) else {})})
    return EXIT_OK if report.ok and recycled.ok and not failed_creds else EXIT_FAILED


def _contested(cluster: api.ClusterAPI, view: model.ClusterView,
               planned: list[plan.Action]) -> list[tuple[str, str, str]]:
    try:
        return observe.contested(cluster, view, planned)
    except errors.KubeError as exc:
        print(f"note: contested serviceaccounts not shown: cannot read events ({exc})",
              file=sys.stderr)
        return []
