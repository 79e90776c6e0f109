"""A real container registry for the tests: CNCF distribution (Debian's `docker-registry` 2.8.2).

Auth modes: `htpasswd` (Basic; bcrypt file written with `htpasswd -B`, read at start — so a
password change restarts the server on the same port), `token` (Bearer: the registry sends
clients to a token realm and trusts tokens signed by a key chained to `rootcertbundle`; see
`stack.tokenserver`), and `none` (anonymous). Plain HTTP or TLS with a cert of the session CA.
Requests are counted from the registry's own access log (combined log format, one line each).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import requests

from stack import pki, procs

Auth = Literal["htpasswd", "token", "none"]
BINARY_ENV = "PSS_REGISTRY_BINARY"  # another `registry serve CONFIG`-compatible binary
DEFAULT_SERVICE = "pss-test-registry"
DEFAULT_ISSUER = "pss-test-token-issuer"
_ACCESS_LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"$')
_PROBE_AGENT = "pss-stack-readiness-probe"  # our own probes are not counted


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One request in the registry's access log."""

    method: str
    path: str
    status: int
    agent: str = ""


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """What the registry needs for `auth: token`."""

    realm: str
    rootcertbundle: Path
    service: str = DEFAULT_SERVICE
    issuer: str = DEFAULT_ISSUER


@dataclass(slots=True)
class RegistryServer:
    """One registry process; `key` is its `auths` key (host:port), `url` its base URL."""

    directory: Path
    auth: Auth
    port: int
    tls: pki.CertPair | None = None
    ca_file: Path | None = None  # verifies `url` when TLS is on
    token: TokenAuth | None = None
    users: dict[str, str] = field(default_factory=dict, repr=False)
    proc: procs.Proc | None = None
    _counted_from: int = 0

    @property
    def key(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.key}"

    @property
    def log_path(self) -> Path:
        return self.directory / "registry.log"

    def ref(self, repository: str, tag: str = "v1") -> str:
        """`host:port/repository:tag`, as skopeo's `docker://` transport wants it."""
        return f"{self.key}/{repository}:{tag}"

    def logs(self) -> list[tuple[str, Path]]:
        return [("registry", self.log_path)]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> RegistryServer:
        binary = registry_binary()
        self._write_config()
        self.proc = procs.start("docker-registry", [str(binary), "serve",
                                                    str(self.directory / "config.yml")],
                                log_path=self.log_path, env=_clean_env())
        verify: bool | str = str(self.ca_file) if self.ca_file else True
        try:
            procs.wait_until(
                f"registry {self.url}/v2/",
                lambda: requests.get(f"{self.url}/v2/", timeout=2, verify=verify,
                                     headers={"User-Agent": _PROBE_AGENT},
                                     allow_redirects=False).status_code in (200, 401),
                timeout=20, procs=[self.proc])
        except BaseException:
            self.proc.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (re-reads the htpasswd file)."""
        self.stop()
        self.start()

    def set_users(self, users: Mapping[str, str]) -> None:
        """htpasswd mode: rewrite the file and restart (the registry reads it at start only)."""
        if self.auth != "htpasswd":
            raise ValueError(f"set_users needs htpasswd mode, not {self.auth!r}; for token "
                             "mode change the token server's users")
        self.users = dict(users)
        self.restart()

    # ------------------------------------------------------------------ counters

    def _all_records(self) -> list[AccessRecord]:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        records = []
        for line in lines:
            match = _ACCESS_LINE.match(line)
            if match and match[4] != _PROBE_AGENT:
                records.append(AccessRecord(match[1], match[2], int(match[3]), match[4]))
        return records

    def access_log(self) -> list[AccessRecord]:
        """Requests logged since start or the last `reset_counts()` (the log is written as each
        response completes: poll with `wait.eventually` right after a request)."""
        return self._all_records()[self._counted_from:]

    def count(self, *, path: str | None = None, method: str | None = None,
              agent: str | None = None) -> int:
        """Requests whose path matches the regex `path` (searched), whose method is `method` and
        whose User-Agent starts with `agent`."""
        pattern = re.compile(path) if path is not None else None
        return sum(1 for r in self.access_log()
                   if (method is None or r.method == method.upper())
                   and (pattern is None or pattern.search(r.path))
                   and (agent is None or r.agent.startswith(agent)))

    def reset_counts(self) -> None:
        self._counted_from = len(self._all_records())

    # ------------------------------------------------------------------ config

    def _write_config(self) -> None:
        http: dict[str, object] = {"addr": self.key, "secret": secrets.token_hex(16)}
        if self.tls is not None:
            http["tls"] = {"certificate": str(self.tls.cert_file), "key": str(self.tls.key_file)}
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.directory / "data")},
                        "delete": {"enabled": True}},
            "http": http,
        }
        if self.auth == "htpasswd":
            htpasswd = self.directory / "htpasswd"
            htpasswd.write_text("".join(_htpasswd_line(u, p) for u, p in self.users.items()))
            htpasswd.chmod(0o600)
            config["auth"] = {"htpasswd": {"realm": "pss-test-registry", "path": str(htpasswd)}}
        elif self.auth == "token":
            if self.token is None:
                raise ValueError("token mode needs a TokenAuth")
            config["auth"] = {"token": {"realm": self.token.realm, "service": self.token.service,
                                        "issuer": self.token.issuer,
                                        "rootcertbundle": str(self.token.rootcertbundle)}}
        # JSON is YAML: no quoting surprises in paths or URLs.
        (self.directory / "config.yml").write_text(json.dumps(config, indent=2))


def registry_binary() -> Path:
    """The distribution registry executable: $PSS_REGISTRY_BINARY or `docker-registry`."""
    named = os.environ.get(BINARY_ENV)
    found = named if named else shutil.which("docker-registry")
    if not found or not os.access(found, os.X_OK):
        raise procs.StackUnavailableError(
            "the distribution registry is not installed: `apt-get install docker-registry` "
            f"(Debian 12: 2.8.2), or name a `registry` binary in {BINARY_ENV}")
    return Path(found)


def _htpasswd_line(user: str, password: str) -> str:
    """A bcrypt line from apache2-utils' htpasswd; the password goes through stdin, not argv."""
    binary = shutil.which("htpasswd")
    if binary is None:
        raise procs.StackUnavailableError(
            "htpasswd is not installed: `apt-get install apache2-utils`")
    done = subprocess.run([binary, "-iBn", user], input=password.encode(), capture_output=True,
                          check=False, timeout=30)
    if done.returncode != 0:
        raise procs.StackUnavailableError(f"htpasswd failed with status {done.returncode}")
    return done.stdout.decode().strip() + "\n"


def _clean_env() -> dict[str, str]:
    # REGISTRY_* variables override the config file: keep the caller's out.
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def start(directory: Path, *, auth: Auth = "htpasswd", users: Mapping[str, str] | None = None,
          tls: pki.CertPair | None = None, ca_file: Path | None = None,
          token: TokenAuth | None = None) -> RegistryServer:
    """Start a registry on a free loopback port in `directory` and wait until /v2/ answers."""
    directory.mkdir(parents=True, exist_ok=True)
    server = RegistryServer(directory=directory, auth=auth, port=procs.free_port(), tls=tls,
                            ca_file=ca_file, token=token, users=dict(users or {}))
    return server.start()
