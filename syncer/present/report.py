"""What the one-shot commands print once their use case has returned: `plan`'s action lines or
JSON list, errors, conflicts and findings on stderr, and the summary (docs/cli-output.md). Names
only, never a value: reports hold none.
"""

from __future__ import annotations

import sys

from syncer import config, oneshot
from syncer.decide import fight
from syncer.present import actions as render
from syncer.present import display, summary


def _err(line: str) -> None:
    print(line, file=sys.stderr)


def one_pass(report: oneshot.PassReport, out: display.Display, *, qps: float,
             burst: int) -> None:
    """`sync` (its writes were shown as they happened, by `out`) or `plan`."""
    if report.error is not None:
        _err(f"error: {report.error}")
        return
    if report.contested_unknown is not None:
        _err(f"note: contested serviceaccounts not shown: cannot read events "
             f"({report.contested_unknown})")
    if report.dry_run:
        actions = (*report.planned, *report.recycling.planned)
        if out.json:
            print(render.to_json(actions))
        else:
            for action in actions:
                print(render.describe(action))
        sys.stdout.flush()  # the lines come before the stderr lines that follow, in a pipe too
    for message in (*report.credentials_failing, *report.failures):
        _err(f"error: {message}")
    for c in report.conflicts:
        _err(f"conflict: secret {c.namespace}/{c.name} exists and is not managed by "
             f"pullsecret-syncer (mapping {c.mapping!r}); left alone")
    display.report_recycling(report.recycling, dry_run=report.dry_run)
    for sa in report.contested:  # a finding, like a conflict: not a write, so not on stdout
        _err(fight.describe(sa.namespace, sa.name, sa.manager))
    if report.dry_run:  # stdout stays the `plan` action lines (or the JSON list)
        _err(summary.plan_summary(report.planned, conflicts=len(report.conflicts),
                                   blocked=len(report.blocked), qps=qps, burst=burst))
        return
    out.summary(
        f"sync: {len(report.written)} writes, {len(report.failures)} failed, "
        f"{len(report.conflicts)} conflicts, {len(report.blocked)} blocked, "
        f"{len(report.credentials_failing)} credentials failing",
        {"writes": len(report.written), "failed": len(report.failures),
         "conflicts": len(report.conflicts), "blocked": len(report.blocked),
         "credentials_failing": len(report.credentials_failing),
         "actions": dict(summary.counts(report.written)),
         **({"pods": report.recycling.counts()} if report.recycling_enabled else {})})


def check_header(cfg: config.Config) -> str:
    return (f"config {cfg.path}: ok ({len(cfg.backends)} backends, {len(cfg.credentials)} "
            f"credentials, {len(cfg.mappings)} mappings)")


_MARK = {"ok": "ok  ", "rejected": "FAIL", "unreachable": "WARN"}


def check_line(status: oneshot.Status) -> str:
    """One line of `check --connect`: `ok   backend 'vault': connected`, `FAIL …`, `WARN …`."""
    match status:
        case oneshot.BackendStatus(name=name, error=None):
            return f"ok   backend {name!r}: connected"
        case oneshot.BackendStatus(name=name, error=error):
            return f"FAIL backend {name!r}: {error}"
        case oneshot.CredentialStatus(error=None):
            return (f"ok   credential {status.name!r} ({status.backend}): registries "
                    f"{', '.join(status.registries)}")
        case oneshot.CredentialStatus(error=error):
            return f"FAIL {error}"
        case oneshot.VerifyStatus():
            return (f"{_MARK[status.result]} verify {status.credential!r} at "
                    f"{status.registry}: {status.result} ({status.detail})")
    raise AssertionError(status)  # pragma: no cover - every kind is matched above


def uninstall(report: oneshot.UninstallReport, out: display.Display) -> None:
    """`uninstall` (its removals were shown as they happened, by `out`), or its dry run."""
    if report.error is not None:
        _err(f"error: {report.error}")
        return
    if report.dry_run:
        for action in report.removed:
            out.listed(action)
    for failure in report.failures:
        _err(f"error: {failure}")
    done = ("would unpatch", "would delete", "would hand back") if report.dry_run else (
        "unpatched", "deleted", "handed back")
    handed = f", {done[2]} {report.released} adopted secrets" if report.released else ""
    out.summary(f"uninstall: {done[0]} {report.service_accounts} serviceaccounts, {done[1]} "
                f"{report.secrets} secrets{handed}, {len(report.failures)} failed",
                {"dry_run": report.dry_run, "serviceaccounts": report.service_accounts,
                 "secrets": report.secrets, "released": report.released,
                 "failed": len(report.failures)})
