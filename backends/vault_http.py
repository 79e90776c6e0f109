"""HTTP to Vault that never carries a backend credential to another origin.

Every Vault request carries a credential: ``X-Vault-Token`` in its headers, or the AppRole
``secret_id`` or the Kubernetes JWT in a login body (which a 307 or 308 sends again).
``requests`` — and so ``hvac`` — follows a redirect to any host with all of it. This session
follows a redirect only within the origin (scheme, host and port) of the request.
"""

from __future__ import annotations

import urllib.parse

import requests


class OffOriginRedirect(requests.exceptions.RequestException):
    """Vault answered a redirect to another scheme, host or port: not followed."""

    def __init__(self, host: str) -> None:
        super().__init__(f"redirect to another origin ({host}) not followed")
        self.host = host


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(
        scheme)


class SameOriginSession(requests.Session):
    """A session that follows a redirect only within the origin of the request.

    A backend credential rides on every Vault request — ``X-Vault-Token`` in the headers, the
    AppRole ``secret_id`` or the Kubernetes JWT in a login body (which a 307 or 308 resends).
    ``requests`` (and so ``hvac``) would follow a redirect to any host with all of it; here a
    redirect to another scheme, host or port ends the request with `OffOriginRedirect`, which
    names the host and nothing else.
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is None:
            return None
        absolute = urllib.parse.urljoin(resp.url, target)
        if _origin(absolute) != _origin(resp.url):
            parts = urllib.parse.urlsplit(absolute)
            host = parts.hostname or "?"
            try:
                port = parts.port
            except ValueError:
                port = None
            shown = f"[{host}]" if ":" in host else host
            raise OffOriginRedirect(f"{parts.scheme}://{shown}" + (f":{port}" if port else ""))
        return target
