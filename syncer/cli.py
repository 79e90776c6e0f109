"""Command line: flags to settings, sub-commands, exit codes (docs/operations.md). Wiring only:
parse, call the command's use case (`syncer.oneshot`, or `syncer.run` for `run`), render its report
(`syncer.present`).

Exit codes: 0 success, 1 something failed (the rest was still done), 2 usage or config error,
130/143 interrupted by SIGINT/SIGTERM. A usage error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import syncer
from syncer import config, oneshot
from syncer.core import settings
from syncer.credentials import fetch
from syncer.kube import client, errors
from syncer.present import display, report
from syncer.telemetry import observability

if TYPE_CHECKING:
    from backends import base
    from syncer.kube import api

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
    if args.command != "version":
        observability.setup_logging(fmt=args.log_format, level=args.log_level)
    if args.command in ("sync", "uninstall") and args.log_level != "debug":
        # each applied write is printed on stdout; its info log line would say it twice
        logging.getLogger("syncer.reconcile").setLevel(logging.WARNING)
    return COMMANDS[args.command](args)


Backends = Mapping[str, "base.Backend"]
Configured = Callable[[argparse.Namespace, config.Config, Backends], int]


def _version(args: argparse.Namespace) -> int:
    print(f"pullsecret-syncer {syncer.__version__}")
    return EXIT_OK


def _load(args: argparse.Namespace) -> tuple[config.Config, dict[str, base.Backend]] | None:
    """The config and its backends; None (its problems printed, one per line on stderr) when
    the config is bad."""
    try:
        cfg = config.load(args.config)
        return cfg, fetch.open_backends(cfg)
    except config.ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return None


def _configured(command: Configured) -> Callable[[argparse.Namespace], int]:
    """A one-shot command that needs the config and its backends (closed at the end)."""
    def run(args: argparse.Namespace) -> int:
        if (loaded := _load(args)) is None:
            return EXIT_USAGE
        cfg, opened = loaded
        try:
            return _guarded(lambda: command(args, cfg, opened))
        finally:
            fetch.close_backends(opened)
    return run


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


@contextlib.contextmanager
def _cluster(args: argparse.Namespace) -> Iterator[api.ClusterAPI]:
    try:
        cluster = client.connect(kube_settings(args))
    except errors.ConfigurationError as exc:
        raise UsageError(f"error: {exc}") from None
    try:
        yield cluster
    finally:
        cluster.close()


def _display(args: argparse.Namespace) -> display.Display:
    """Per-write lines and progress of `sync`/`uninstall` (docs/cli-output.md); `plan` writes
    nothing, so its display shows nothing."""
    return display.Display(command=args.command, fmt=args.output,
                           quiet=getattr(args, "quiet", False),
                           qps=args.kube_qps, burst=args.kube_burst)


def _sync(args: argparse.Namespace, cfg: config.Config, opened: Backends) -> int:
    out = _display(args)
    with _cluster(args) as cluster, out:
        result = oneshot.sync(cfg, opened, cluster, listener=out)
    report.one_pass(result, out, qps=args.kube_qps, burst=args.kube_burst)
    return result.exit_status


def _plan(args: argparse.Namespace, cfg: config.Config, opened: Backends) -> int:
    out = _display(args)
    with _cluster(args) as cluster:
        result = oneshot.plan(cfg, opened, cluster)
    report.one_pass(result, out, qps=args.kube_qps, burst=args.kube_burst)
    return result.exit_status


def _check(args: argparse.Namespace, cfg: config.Config, opened: Backends) -> int:
    print(report.check_header(cfg))
    result = oneshot.check(cfg, opened, oneshot.CheckOptions(connect=args.connect),
                           on_status=lambda status: print(report.check_line(status)))
    return result.exit_status


def _uninstall(args: argparse.Namespace) -> int:
    options = oneshot.UninstallOptions(
        instance=None if args.all_instances else args.instance, dry_run=args.dry_run)
    with _cluster(args) as cluster:
        out = _display(args)
        with out:
            result = oneshot.uninstall(cluster, options, listener=out)
    report.uninstall(result, out)
    return result.exit_status


def _run(args: argparse.Namespace) -> int:
    """The daemon: it owns the backends from here on."""
    if (loaded := _load(args)) is None:
        return EXIT_USAGE
    from syncer.run import command  # the daemon's machinery is needed by `run` alone

    return command.main(settings.RunSettings(
        config_path=Path(args.config), kube=kube_settings(args),
        leader_elect=args.leader_elect,
        leader_election_namespace=args.leader_election_namespace,
        http=args.http_addr, resync_interval=args.resync_interval,
    ), loaded[0], backends=loaded[1])


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "version": _version,
    "run": _run,
    "sync": _configured(_sync),
    "plan": _configured(_plan),
    "check": _configured(_check),
    "uninstall": lambda args: _guarded(lambda: _uninstall(args)),
}
