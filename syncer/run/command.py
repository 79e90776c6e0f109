"""The `run` process around the daemon: the cluster connection, signals and exit codes.

SIGTERM/SIGINT stop it (143/130) within seconds; SIGHUP asks for a config re-read and a refresh
of every credential.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType

from backends import base
from syncer import config
from syncer.core import settings
from syncer.kube import client, errors
from syncer.run import daemon

log = logging.getLogger("syncer.run")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(run: settings.RunSettings, cfg: config.Config, *,
         backends: Mapping[str, base.Backend]) -> int:
    if run.leader_elect and not (run.leader_election_namespace
                                 or os.environ.get("POD_NAMESPACE")):
        log.error("--leader-elect needs --leader-election-namespace or $POD_NAMESPACE")
        return EXIT_USAGE
    stop = threading.Event()
    received: list[int] = []
    try:
        cluster = client.connect(run.kube, stop=stop)
    except errors.ConfigurationError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return EXIT_USAGE
    the_daemon = daemon.Daemon(run, cfg, cluster=cluster, backends=backends, stop=stop)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    handlers: dict[int, Callable[[int, FrameType | None], None]] = {
        signal.SIGTERM: on_stop, signal.SIGINT: on_stop,
        signal.SIGHUP: lambda s, f: the_daemon.reload_requested.set(),
    }
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    try:
        the_daemon.run()
    except OSError as exc:  # the HTTP port cannot be bound
        log.error("cannot start", extra={"error": f"{run.http}: {exc.strerror or exc}"})
        return EXIT_FAILED
    if received and received[0] == signal.SIGINT:
        return 130
    return 143 if received else EXIT_OK
