"""Rules, request records and fault bodies of the fault proxy (no I/O here)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
WATCH_QUERY = re.compile(r"(^|&)watch=(1|true)(&|$)", re.IGNORECASE)
_KUBE_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}
_AWS_CODES = {400: "ValidationException", 403: "AccessDeniedException",
              404: "ResourceNotFoundException", 429: "ThrottlingException",
              500: "InternalServiceError", 503: "ServiceUnavailable"}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request seen by the proxy. `status` is None if no response was sent (reset/pending);
    `injected` names the rule that answered instead of the upstream ("fail", "reset", "cut")."""

    method: str
    path: str
    query: str
    status: int | None
    injected: str | None
    started: float

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


class Entry:
    __slots__ = ("injected", "method", "path", "query", "started", "status")

    def __init__(self, method: str, path: str, query: str) -> None:
        self.method, self.path, self.query = method, path, query
        self.status: int | None = None
        self.injected: str | None = None
        self.started = time.time()

    def freeze(self) -> RequestRecord:
        return RequestRecord(self.method, self.path, self.query, self.status, self.injected,
                             self.started)


@dataclass(slots=True)
class Rule:
    action: str  # fail | delay | reset | cut_watch
    method: str | None
    path: re.Pattern[str] | None
    remaining: int | None
    status: int = 0
    seconds: float = 0.0
    body: bytes | None = None
    headers: dict[str, str] | None = None
    abrupt: bool = False

    def matches(self, method: str, target: str, query: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.path is not None and not self.path.search(target):
            return False
        return self.action != "cut_watch" or bool(WATCH_QUERY.search(query))


def fault_body(status: int, path: str, headers: Any) -> tuple[bytes, str]:
    """A body like the one the upstream itself would send with `status`."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    message = f"injected by fault proxy: {status} {phrase}"
    if path.startswith(("/api", "/apis", "/version", "/readyz", "/healthz", "/livez")):
        doc: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": _KUBE_REASONS.get(status, phrase.replace(" ", "")),
            "code": status,
        }
        if status == 429:
            doc["details"] = {"retryAfterSeconds": 1}
        return json.dumps(doc).encode(), "application/json"
    if path.startswith("/v1/"):
        return json.dumps({"errors": [message]}).encode(), "application/json"
    if headers.get("X-Amz-Target") or str(headers.get("Authorization", "")).startswith("AWS4"):
        code = _AWS_CODES.get(status, "InternalServiceError")
        return (json.dumps({"__type": code, "message": message}).encode(),
                "application/x-amz-json-1.1")
    return message.encode(), "text/plain; charset=utf-8"
