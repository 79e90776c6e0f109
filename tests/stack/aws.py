"""AWS Secrets Manager, ECR and STS for the tests: a `moto` server process, or PSS_AWS_ENDPOINT.

moto's ECR tokens are deterministic and expired: `stack.ecrtokens` puts a proxy in front that
makes them unique and fresh."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests

from stack import procs

MOTO_VERSION = "5.2.5"
REGION = "us-east-1"


@dataclass(slots=True)
class AwsServer:
    """An AWS-API endpoint with dummy credentials."""

    endpoint: str
    region: str = REGION
    proc: procs.Proc | None = None
    access_key_id: str = field(default="testing", repr=False)
    secret_access_key: str = field(default="testing", repr=False)

    @property
    def log_path(self) -> Path | None:
        return self.proc.log_path if self.proc else None

    @property
    def env(self) -> dict[str, str]:
        """Credentials and region for a subprocess (endpoints: see `endpoint_env`)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service_name: str, *, endpoint_url: str | None = None,
               **kwargs: Any) -> Any:
        """A boto3 client for `service_name` talking to this endpoint (or `endpoint_url`,
        e.g. a fault proxy in front of it)."""
        return boto3.session.Session().client(
            service_name,
            endpoint_url=endpoint_url or self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            **kwargs,
        )

    def reset(self) -> None:
        """Forget every secret (moto only)."""
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def isolate_default_chain(server: AwsServer, monkeypatch: Any, directory: Path) -> None:
    """Make boto3's default chain in this process see only `server`'s dummy credentials and
    region: no profile, config file, session token or endpoint override from the environment."""
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")] + [
            "AWS_PROFILE", "AWS_SESSION_TOKEN"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(directory / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(directory / "no-credentials"))
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)


def _answers(endpoint: str) -> bool:
    return requests.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500


def start(directory: Path, *, attempts: int = 3) -> AwsServer:
    """Start `python -m moto.server` on a free loopback port and wait until it answers."""
    try:
        import moto
    except ImportError as exc:
        raise procs.StackUnavailableError(
            f"moto not installed: pip install 'moto[server]=={MOTO_VERSION}'"
        ) from exc
    del moto
    directory.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION})
    last: procs.StackUnavailableError | None = None
    for _ in range(attempts):  # the free port may be taken between probe and bind
        port = procs.free_port()
        endpoint = f"http://127.0.0.1:{port}"
        proc = procs.start(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            log_path=directory / "moto.log",
            env=env,
        )
        try:
            procs.wait_until("moto server", lambda e=endpoint: _answers(e), timeout=30,
                             procs=[proc])
        except procs.StackUnavailableError as exc:
            proc.stop()
            last = exc
            continue
        return AwsServer(endpoint=endpoint, proc=proc)
    assert last is not None
    raise last


def from_env() -> AwsServer | None:
    """The endpoint named by PSS_AWS_ENDPOINT (credentials from AWS_* or dummies); None if unset."""
    endpoint = os.environ.get("PSS_AWS_ENDPOINT")
    if not endpoint:
        return None
    return AwsServer(
        endpoint=endpoint.rstrip("/"),
        region=os.environ.get("AWS_DEFAULT_REGION", REGION),
        access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
