"""Turning configured credentials into registry auths: open backends, read, parse.

One `read` is one backend request on the happy path; the caller decides how often to read
(once per pass for `sync`, once per refresh interval for `run`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import tenacity

import backends
from backends import base
from syncer import config
from syncer.core import dockerconfig, renewal
from syncer.telemetry import observability

log = logging.getLogger(__name__)


class CredentialError(Exception):
    """A credential could not be turned into auths; the message names fields, never values."""

    def __init__(self, credential: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"credential {credential!r}: {message}")
        self.credential = credential
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Reading:
    """The outcome of one read of one credential."""

    name: str
    auths: dockerconfig.Auths | None = field(repr=False)
    error: CredentialError | None = None


def open_backends(
    cfg: config.Config, *, plugins: Mapping[str, base.BackendPlugin] | None = None
) -> dict[str, base.Backend]:
    """Build every configured backend (connections are made lazily by the backends).

    Settings that cannot work (no address, no token source) are config errors: ConfigError
    with one line per backend, like the loader's.
    """
    known = plugins if plugins is not None else backends.plugins()
    opened: dict[str, base.Backend] = {}
    problems: list[str] = []
    for name, spec in cfg.backends.items():
        try:
            opened[name] = known[spec.type].factory(name, spec.settings)
        except base.BackendError as exc:
            problems.append(f"{cfg.path}: backends.{name}: {exc}")
        except Exception as exc:  # a plugin's own bug or an environment it did not expect
            problems.append(f"{cfg.path}: backends.{name}: the backend could not be set up "
                            f"({type(exc).__name__})")
    if problems:
        close_backends(opened)
        raise config.ConfigError(problems)
    return opened


def close_backends(opened: Mapping[str, base.Backend]) -> None:
    for backend in opened.values():
        try:
            backend.close()
        except Exception:
            log.debug("backend close failed")


def used(cfg: config.Config) -> set[str]:
    """The credentials some mapping uses (only those are ever read)."""
    return {c for m in cfg.mappings for c in m.credentials}


@dataclass(frozen=True, slots=True)
class Fetched:
    """One credential's value: its registry auths and, for a token, when it expires."""

    auths: dockerconfig.Auths = field(repr=False)
    expires_at: float | None = None  # Unix seconds (token credentials only)


def fetch(spec: config.CredentialSpec, backend: base.Backend) -> Fetched:
    """Fetch and parse one credential; raises CredentialError only."""
    try:
        payload = backend.fetch(spec.ref)
    except base.BackendError as exc:
        raise CredentialError(spec.name, str(exc), retryable=exc.retryable) from exc
    try:
        auths = dockerconfig.parse_payload(payload.data, fields=spec.fields,
                                           registry=spec.registry)
    except dockerconfig.PayloadError as exc:
        raise CredentialError(spec.name, f"invalid payload: {exc}") from exc
    return Fetched(auths, payload.expires_at)


def schedule(spec: config.CredentialSpec) -> renewal.Schedule:
    """When `spec` is read again (the one place that asks): a backend that issues tokens
    (aws-ecr) is renewed by expiry (`renewBefore`), any other is read every refreshInterval."""
    if spec.issues_tokens:
        return renewal.TokenSchedule(getattr(spec.ref.options, "renew_before", None))
    return renewal.IntervalSchedule(spec.refresh_interval)


def check_fresh(name: str, fetched: Fetched, sched: renewal.Schedule, *, now: float) -> None:
    """A value its schedule refuses as it arrives is a failed read: a token that arrives
    without an end or expired is never published."""
    if not sched.takes(now=now, expires_at=fetched.expires_at):
        raise CredentialError(name, "the backend issued a token that is already expired or "
                                    "about to")


Gate = Callable[[config.CredentialSpec, dockerconfig.Auths], bool]


def gate_all(gate: Gate, items: Mapping[str, tuple[config.CredentialSpec, dockerconfig.Auths]],
             ) -> dict[str, bool]:
    """`gate` of every item, the items side by side: a slow registry (each check is bounded by
    its own deadline) never holds up the check of another credential."""
    if len(items) <= 1:
        return {name: gate(spec, auths) for name, (spec, auths) in items.items()}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(items), 32),
                                               thread_name_prefix="verify") as pool:
        futures = {name: pool.submit(gate, spec, auths) for name, (spec, auths) in items.items()}
        return {name: future.result() for name, future in futures.items()}


def read(spec: config.CredentialSpec, backend: base.Backend) -> dockerconfig.Auths:
    """Fetch and parse one credential, value only; raises CredentialError only."""
    return fetch(spec, backend).auths


def read_all(
    cfg: config.Config,
    opened: Mapping[str, base.Backend],
    *,
    metrics: observability.Metrics | None = None,
    names: set[str] | None = None,
    attempts: int = 3,
    clock: Callable[[], float] = time.time,
    gate: Gate | None = None,
) -> dict[str, Reading]:
    """Read each (used) credential exactly once, with a short retry for transient failures.
    `gate` (registry verification) may refuse a value: the credential then counts as failed,
    so the Secrets that use it keep their last published content."""
    wanted = sorted(used(cfg) if names is None else names & used(cfg))
    failed: dict[str, CredentialError] = {}
    read_ok: dict[str, dockerconfig.Auths] = {}
    for name in wanted:
        spec = cfg.credentials[name]
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, CredentialError) and e.retryable),
            wait=tenacity.wait_exponential(multiplier=0.5, max=4.0) + tenacity.wait_random(0, 0.5),
            stop=tenacity.stop_after_attempt(attempts),
            reraise=True,
        )
        try:
            fetched = retrying(fetch, spec, opened[spec.backend])
            check_fresh(name, fetched, schedule(spec), now=clock())
        except CredentialError as exc:
            failed[name] = exc
            continue
        read_ok[name] = fetched.auths
    if gate is not None:  # every registry check at once: one slow registry delays no other
        verdicts = gate_all(gate, {n: (cfg.credentials[n], a) for n, a in read_ok.items()})
        for name in sorted(n for n, ok in verdicts.items() if not ok):
            del read_ok[name]
            failed[name] = CredentialError(name, "a registry rejected it (verify); "
                                                 "nothing published")
    out: dict[str, Reading] = {}
    for name in wanted:
        if name in failed:
            log.error("credential read failed",
                      extra={"credential": name, "error": str(failed[name])})
            if metrics:
                metrics.credential_read(name, ok=False, now=clock())
            out[name] = Reading(name, None, failed[name])
            continue
        if metrics:
            metrics.credential_read(name, ok=True, now=clock())
        out[name] = Reading(name, read_ok[name])
    return out
