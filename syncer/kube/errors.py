"""The Kubernetes error tree every `ClusterAPI` implementation raises. Pure.

Messages name the call (`PATCH secrets ns/x`), the HTTP status and reason, never object data.
The real client maps the `kubernetes` library's exceptions onto these; the fake raises them
directly, with the same status codes the apiserver uses.
"""

from __future__ import annotations


class KubeError(Exception):
    """A Kubernetes API call failed. `status` is the HTTP status when there was one."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    """404: the object (or its namespace) does not exist."""


class NamespaceTerminating(NotFound):
    """403 from NamespaceLifecycle: the namespace is going away; as good as gone."""


class Conflict(KubeError):
    """409, or 422 from a failed JSON-patch `test` precondition: re-read and retry."""


class AlreadyExists(Conflict):
    """409 AlreadyExists on create."""


class Invalid(KubeError):
    """422: the apiserver rejected the object (too big, not valid JSON, immutable field)."""


class Forbidden(KubeError):
    """401/403: RBAC does not allow it."""


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; re-list."""


class TooManyRequests(KubeError):
    """429 that is an answer, not throttling: an eviction refused by a PodDisruptionBudget."""


class Retryable(KubeError):
    """429 (throttling), 5xx, timeouts and connection errors."""

    retryable = True


class ConfigurationError(KubeError):
    """No usable kubeconfig / in-cluster configuration (a usage error for the CLI)."""
