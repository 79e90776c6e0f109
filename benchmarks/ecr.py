"""The ECR rows of the benchmark: one aws-ecr credential used by N namespaces.

moto's ECR sits behind tests/stack/ecrtokens.py, which makes every token new and short-lived
(`lifetime` seconds) as real ECR's are unique per call, so one real renewal happens within the
run. It is counted — token calls at the proxy, Kubernetes writes in the audit log — and then
scaled to 24 hours of real 12-hour tokens, beside the fixed-interval alternative (a tool that
reads the credential every minute, as for a static secret): every call returns a new token, so
every call rewrites all N Secrets.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import harness
from syncer.core import renewal
from tests.integration.daemonproc import wait_until
from tests.stack import ecrtokens

SECRET_NAME = "ecr-regcred"
REAL_LIFETIME_HOURS = 12.0
FIXED_INTERVAL_MINUTES = 1.0


def scenario(stack: harness.Stack, prefix: str, n: int, *, qps: float, burst: int,
             lifetime: float | None = None, timeout: float = 600.0) -> dict[str, Any]:
    """N namespaces named `prefix-*` exist. Start a daemon that writes one ECR token into each,
    wait for one renewal, and count it. The token lives long enough (default: four times the
    N writes at `qps`, at least 40 s) that the next renewal, half a lifetime later, falls after
    the counted one's writes are done."""
    lifetime = lifetime or max(40.0, 4 * n / qps + 20)
    proxy = ecrtokens.EcrTokenProxy(stack.aws.endpoint, lifetime=lifetime).start()
    config = stack.workdir / "ecr.yaml"
    # prune off: the namespaces still hold the main scenario's Secrets of another mapping
    config.write_text(f"""version: 1
defaults: {{prune: false}}
backends:
  ecr: {{type: aws-ecr, region: {stack.aws.region}, endpointUrl: "{proxy.url}"}}
credentials:
  prod: {{backend: ecr}}
mappings:
  - name: ecr
    namespaces: {{patterns: ["{prefix}-*"]}}
    secretName: {SECRET_NAME}
    credentials: [prod]
    serviceAccounts: []
""")
    stack.reset_counts()
    daemon = harness.Daemon(stack, config, name="daemon-ecr", args=(
        "--kube-qps", str(qps), "--kube-burst", str(burst)))
    try:
        daemon.proc.wait_ready(timeout=timeout)
        converged = sum(harness.kube_traffic(stack.audit.records()).writes.values())
        stack.reset_counts()
        calls_at_start = len(proxy.token_calls())
        began = time.monotonic()
        wait_until(lambda: len(proxy.token_calls()) > calls_at_start, timeout=lifetime,
                   interval=0.2, what="the ECR token renewal")
        renewed_after = time.monotonic() - began
        wait_until(lambda: harness.kube_traffic(stack.audit.records()).total_writes >= n,
                   timeout=timeout, interval=0.5, what=f"{n} Secrets rewritten")
        time.sleep(2)
        traffic = harness.kube_traffic(stack.audit.records())
        calls = len(proxy.token_calls()) - calls_at_start
    finally:
        daemon.stop()
        daemon.close()
        proxy.stop()
    life = REAL_LIFETIME_HOURS * 3600
    cycle = renewal.renew_at(fetched_at=0.0, expires_at=life, renew_before=None,
                             rand=lambda: 0.5)  # the mean jitter
    renewals_per_day = 24 * 3600 / cycle
    fixed_calls = 24 * 60 / FIXED_INTERVAL_MINUTES
    per_call_writes = traffic.total_writes / max(calls, 1)
    return {
        "namespaces": n, "token_lifetime_seconds": lifetime,
        "writes_to_converge": converged, "renewal_after_seconds": round(renewed_after, 1),
        "token_calls_per_renewal": calls, "writes_per_renewal": traffic.total_writes,
        "writes_per_renewal_detail": dict(traffic.writes),
        "write_failures": dict(traffic.write_failures), "retries": traffic.retries,
        "per_24h": {
            "ours": {"backend_calls": renewals_per_day,
                     "kube_writes": renewals_per_day * per_call_writes},
            "fixed_interval_1m": {"backend_calls": fixed_calls,
                                  "kube_writes": fixed_calls * per_call_writes},
        },
    }
