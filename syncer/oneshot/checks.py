"""`check`: the config loaded (the caller did that), and with `connect` every backend logged in
to, every credential read and checked against its registries — returned as a `CheckReport`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from backends import base
from syncer import config
from syncer.credentials import fetch, publish


@dataclass(frozen=True, slots=True)
class CheckOptions:
    connect: bool = False  # log in to every backend and read every credential


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """One backend logged in to, or why not."""

    name: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialStatus:
    """One credential read (the registries it holds, names only), or why not."""

    name: str
    backend: str
    registries: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyStatus:
    """A registry's answer to a login with one credential: `ok`, `rejected` (a failure) or
    `unreachable` (a warning: the registry could not be asked)."""

    credential: str
    registry: str
    result: str
    detail: str


Status = BackendStatus | CredentialStatus | VerifyStatus


@dataclass(slots=True)
class CheckReport:
    path: str
    backends: int
    credentials: int
    mappings: int
    connected: bool
    statuses: list[Status] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(
            s.result == "rejected" if isinstance(s, VerifyStatus) else s.error is not None
            for s in self.statuses)

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1


def check(cfg: config.Config, backends: Mapping[str, base.Backend],
          options: CheckOptions = CheckOptions(), *,
          on_status: Callable[[Status], None] | None = None) -> CheckReport:
    """Each status is told to `on_status` as soon as it is known (a slow backend is seen
    waiting), and kept in the report."""
    report = CheckReport(path=str(cfg.path), backends=len(cfg.backends),
                         credentials=len(cfg.credentials), mappings=len(cfg.mappings),
                         connected=options.connect)
    told = on_status or (lambda status: None)

    def found(status: Status) -> None:
        report.statuses.append(status)
        told(status)

    if not options.connect:
        return report
    for name in sorted(backends):
        try:
            backends[name].check()
        except base.BackendError as exc:
            found(BackendStatus(name, error=str(exc)))
            continue
        found(BackendStatus(name))
    gate = publish.VerifyGate()
    for name in sorted(cfg.credentials):
        spec = cfg.credentials[name]
        try:
            auths = fetch.read(spec, backends[spec.backend])
        except fetch.CredentialError as exc:
            found(CredentialStatus(name, spec.backend, error=str(exc)))
            continue
        found(CredentialStatus(name, spec.backend, registries=tuple(sorted(auths))))
        for registry, outcome in gate.outcomes(spec, auths).items():
            found(VerifyStatus(name, registry, outcome.result, outcome.detail))
    return report
