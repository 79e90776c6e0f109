"""The one-shot commands as use cases: `sync`, `plan`, `check` and `uninstall` take a config, the
opened backends and a cluster handle, and return a report; they read no argv and print nothing
(the command line renders the report, `syncer.present.report`).

What a person sees while a pass runs goes through the `Listener` the caller passes.
"""

from __future__ import annotations

from syncer.oneshot.checks import (
    BackendStatus,
    CheckOptions,
    CheckReport,
    CredentialStatus,
    Status,
    VerifyStatus,
    check,
)
from syncer.oneshot.passes import Contested, Listener, PassReport, plan, sync
from syncer.oneshot.removal import UninstallOptions, UninstallReport, uninstall

__all__ = [
    "BackendStatus",
    "CheckOptions",
    "CheckReport",
    "Contested",
    "CredentialStatus",
    "Listener",
    "PassReport",
    "Status",
    "UninstallOptions",
    "UninstallReport",
    "VerifyStatus",
    "check",
    "plan",
    "sync",
    "uninstall",
]
