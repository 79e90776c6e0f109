"""The one place where the `kubernetes` library's exceptions become `syncer.kube.errors`.

Messages name the call and the apiserver's status and reason; for writes that carry credential
data the apiserver's message is left out (it may quote the object) and only field names are kept.
"""

from __future__ import annotations

import json

import urllib3
from kubernetes.client.exceptions import ApiException

from syncer.kube import errors


def _status_details(exc: ApiException) -> tuple[str, str, list[str]]:
    """(reason, message, cause fields) of an API Status body, without object data."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return "", "", []
    if not isinstance(body, dict):
        return "", "", []
    details = body.get("details")
    causes = details.get("causes", []) if isinstance(details, dict) else []
    fields = [str(c.get("field", "")) for c in causes if isinstance(c, dict) and c.get("field")]
    return str(body.get("reason", "")), str(body.get("message", "")), fields


def _failed_test_op(message: str, fields: list[str]) -> bool:
    """Whether a 422 is a failed JSON-patch `test` precondition: newer apiservers name the
    test ("testing value … failed"); old ones said only "the server rejected our request"."""
    return ("test operation" in message or "testing value" in message
            or (not fields and "rejected our request" in message))


def translate(exc: Exception, what: str, *, quote_message: bool = True) -> errors.KubeError:
    """Our error for a client exception raised doing `what` (`PATCH secrets ns/x`)."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        reason, message, fields = _status_details(exc)
        detail = message if quote_message else (
            f"invalid fields: {', '.join(fields)}" if fields else reason
        )
        text = f"{what}: {status} {reason}".rstrip() + (f": {detail}" if detail else "")
        if status == 404:
            return errors.NotFound(text, status=status, reason=reason)
        if status == 409:
            cls = errors.AlreadyExists if reason == "AlreadyExists" else errors.Conflict
            return cls(text, status=status, reason=reason)
        if status == 422:
            if _failed_test_op(message, fields):
                return errors.Conflict(text, status=status, reason=reason)
            return errors.Invalid(text, status=status, reason=reason)
        if status == 410:
            return errors.Gone(text, status=status, reason=reason)
        if status == 403 and "being terminated" in message:
            return errors.NamespaceTerminating(text, status=status, reason=reason)
        if status == 403 and "poddisruptionbudget" in message:  # a budget, not RBAC, says no
            return errors.TooManyRequests(text, status=status, reason=reason)
        if status in (401, 403):
            return errors.Forbidden(text, status=status, reason=reason)
        if status == 429 and "disruption budget" in message:
            return errors.TooManyRequests(text, status=status, reason=reason)
        if status == 429 or status >= 500 or status == 0:
            return errors.Retryable(text, status=status, reason=reason)
        return errors.KubeError(text, status=status, reason=reason)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return errors.Retryable(f"{what}: connection failed ({type(exc).__name__})")
    return errors.KubeError(f"{what}: {type(exc).__name__}")
