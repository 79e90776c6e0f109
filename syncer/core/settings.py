"""What the command line decided: typed settings for the Kubernetes connection and the daemon.

`cli.py` parses and validates flags into these; everything else takes them as values, so a test
builds a `RunSettings` directly instead of faking an argparse namespace. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_QPS = 20.0
DEFAULT_BURST = 40
DEFAULT_HTTP_ADDR = "0.0.0.0:8080"
DEFAULT_RESYNC_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """How to reach the cluster: kubeconfig/context (None: in-cluster or the defaults) and the
    client-side write limit."""

    kubeconfig: str | None = None
    context: str | None = None
    qps: float = DEFAULT_QPS
    burst: int = DEFAULT_BURST


@dataclass(frozen=True, slots=True)
class HttpAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_http_address(text: str) -> HttpAddress:
    """`HOST:PORT` (HOST may be empty or `[v6]`); ValueError with a message for the user."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, e.g. 0.0.0.0:8080 (got {text!r})")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    host = host.strip("[]") if host.startswith("[") else host
    if any(c.isspace() for c in host) or "/" in host:
        raise ValueError(f"invalid host {host!r}")
    return HttpAddress(host or "0.0.0.0", port)  # noqa: S104 - the documented default


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything `pullsecret-syncer run` needs besides the config file's content."""

    config_path: Path
    kube: KubeSettings = field(default_factory=KubeSettings)
    leader_elect: bool = False
    leader_election_namespace: str | None = None
    http: HttpAddress = field(default_factory=lambda: parse_http_address(DEFAULT_HTTP_ADDR))
    resync_interval: float = DEFAULT_RESYNC_SECONDS
