"""Amazon ECR backend: one ``GetAuthorizationToken`` per fetch, returned as a Docker config.

Every fetch issues a new token (12 h on real ECR), so this backend ``issues_tokens``: its payload
carries ``expires_at`` and the refresher renews it before expiry (``renewBefore``, see
`syncer.core.renewal`) instead of reading it every ``refreshInterval``. The registry key is the host
of the token's ``proxyEndpoint``. Session, assumed role and error map: `backends.aws_common`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import urlsplit

import pydantic
from pydantic_core import PydanticCustomError

from backends import aws_common, base, durations

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr.type_defs import GetAuthorizationTokenResponseTypeDef

USERNAME = "AWS"  # the user name of every ECR token
_ACCOUNT_DIGITS = 12


def _account_id(value: str) -> str:
    if len(value) != _ACCOUNT_DIGITS or not value.isascii() or not value.isdigit():
        raise PydanticCustomError("registry_id", "must be a 12-digit AWS account ID")
    return value


def _at_least_one_second(value: float) -> float:
    if value < 1:
        raise PydanticCustomError("duration", "must be at least 1s")
    return value


AccountId = Annotated[
    str,
    pydantic.AfterValidator(_account_id),
    pydantic.WithJsonSchema({"type": "string", "pattern": "^[0-9]{12}$"}),
]
RenewBefore = Annotated[durations.Duration, pydantic.AfterValidator(_at_least_one_second)]


class EcrSettings(aws_common.AwsSettings):
    """The ``backends.<name>`` block of ``type: aws-ecr`` (without ``type``); ``endpointUrl`` is
    the ECR endpoint."""


class EcrRef(base.StrictBlock):
    """The aws-ecr-specific keys of a ``credentials.<name>`` block."""

    registry_id: AccountId | None = pydantic.Field(
        default=None, description="Registry (account ID) of the token; default: the caller's."
    )
    renew_before: RenewBefore | None = pydantic.Field(
        default=None,
        description="Renew when less than this is left; default: half the token's lifetime.",
    )


class EcrBackend(aws_common.AwsBackend):
    """An ECR client for one backend block; thread-safe. Create with :func:`create`."""

    SERVICE = "ecr"

    def fetch(self, ref: base.CredentialRef) -> base.Payload:
        opts = self.options(ref, EcrRef)
        registry = opts.registry_id or "of the caller's account"
        what = f"aws-ecr backend {self.name!r}: token for registry {registry}"
        # Without registryIds ECR answers for the caller's own registry.
        kwargs: dict[str, Any] = {"registryIds": [opts.registry_id]} if opts.registry_id else {}
        resp = aws_common.call(what, lambda: self._ecr().get_authorization_token(**kwargs))
        return _payload(resp, what)

    def _ecr(self) -> ECRClient:
        return cast("ECRClient", self.client())


def _payload(resp: GetAuthorizationTokenResponseTypeDef, what: str) -> base.Payload:
    """The token as a Docker config for the host of its proxyEndpoint; never quotes a value."""
    entries = resp.get("authorizationData") or []
    if len(entries) != 1:
        raise base.InvalidPayload(
            f"{what}: expected one authorizationData entry, got {len(entries)}"
        )
    entry: Mapping[str, Any] = entries[0]
    token = entry.get("authorizationToken")
    if not isinstance(token, str) or not token:
        raise base.InvalidPayload(f"{what}: authorizationData has no authorizationToken")
    expires = entry.get("expiresAt")
    if not isinstance(expires, datetime.datetime):
        raise base.InvalidPayload(f"{what}: authorizationData has no expiresAt")
    auth = {"username": USERNAME, "password": _password(token, what), "auth": token}
    return base.Payload(
        data={"auths": {_host(entry.get("proxyEndpoint"), what): auth}},
        expires_at=expires.timestamp(),
    )


def _password(token: str, what: str) -> str:
    """The password in ``base64("AWS:<password>")``."""
    try:
        text = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise base.InvalidPayload(f"{what}: authorizationToken is not base64 text") from None
    user, colon, password = text.partition(":")
    if user != USERNAME or not colon or not password:
        raise base.InvalidPayload(
            f"{what}: authorizationToken does not decode to {USERNAME}:<password>"
        )
    return password


def _host(endpoint: object, what: str) -> str:
    """host[:port] of the proxyEndpoint URL, lower case."""
    if not isinstance(endpoint, str) or not endpoint:
        raise base.InvalidPayload(f"{what}: authorizationData has no proxyEndpoint")
    parts = urlsplit(endpoint)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host, port = None, None
    if parts.scheme not in ("https", "http") or not host:
        raise base.InvalidPayload(f"{what}: proxyEndpoint is not an http(s) URL")
    return host + (f":{port}" if port else "")


def create(name: str, settings: Any) -> EcrBackend:
    """The plugin factory: validates ``settings`` if given as a mapping; no network I/O."""
    if not isinstance(settings, EcrSettings):
        settings = EcrSettings.model_validate(settings)
    return EcrBackend(name, settings)


PLUGIN = base.BackendPlugin(
    type_name="aws-ecr",
    settings_model=EcrSettings,
    ref_model=EcrRef,
    factory=create,
    issues_tokens=True,
)
