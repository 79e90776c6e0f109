"""The publish gate: before a new value of a credential with `verify` reaches any Secret, each of
its registries is asked for the `docker login` check (`syncer.credentials.verify`).

Called once per new value — not per namespace, not per refresh of an unchanged value. A
definite rejection keeps the value out (the last published one stays, the credential is reported
down); an unreachable registry lets it through with a warning. Every answer is counted in
`credential_verify_total{credential,result}`; logs name the credential and the registry, never
the value.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from pathlib import Path

from syncer import config
from syncer.core import dockerconfig
from syncer.credentials import verify
from syncer.telemetry import observability

log = logging.getLogger("syncer.credentials.publish")

Checker = Callable[..., verify.Outcome]


def options(spec: config.VerifySpec) -> verify.Options:
    return verify.Options(ca_cert=Path(spec.ca_cert) if spec.ca_cert else None,
                          insecure_skip_verify=spec.insecure_skip_verify,
                          plain_http=spec.plain_http)


class VerifyGate:
    """`refresher.Gate` (and the one-shot commands' check): True when the value may be published."""

    def __init__(self, *, metrics: observability.Metrics | None = None,
                 check: Checker = verify.check) -> None:
        self._metrics = metrics
        self._check = check

    def outcomes(self, spec: config.CredentialSpec,
                 auths: dockerconfig.Auths) -> dict[str, verify.Outcome]:
        """The login check of every registry of `auths` (none when `verify` is off)."""
        if spec.verify is None:
            return {}
        opts = options(spec.verify)
        keys = sorted(auths)
        if len(keys) <= 1:
            found = {key: self._check(key, auths[key], options=opts) for key in keys}
        else:  # side by side: each check is bounded by its own deadline, none waits on another
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(keys), 16),
                                                       thread_name_prefix="verify") as pool:
                futures = {key: pool.submit(self._check, key, auths[key], options=opts)
                           for key in keys}
                found = {key: future.result() for key, future in futures.items()}
        for key, outcome in found.items():
            if self._metrics is not None:
                self._metrics.credential_verify.labels(credential=spec.name,
                                                       result=outcome.result).inc()
            extra = {"credential": spec.name, "registry": key, "error": outcome.detail}
            if outcome.result == "rejected":
                log.error("the registry rejected the new value; keeping the last published one",
                          extra=extra)
            elif outcome.result == "unreachable":
                log.warning("the registry could not verify the new value; publishing it anyway",
                            extra=extra)
            else:
                log.info("the registry accepted the new value", extra=extra)
        return found

    def __call__(self, spec: config.CredentialSpec, auths: dockerconfig.Auths) -> bool:
        return all(o.result != "rejected" for o in self.outcomes(spec, auths).values())
