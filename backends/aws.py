"""AWS Secrets Manager backend: reads one version stage of a secret whose content is a JSON object.

The only module that imports ``boto3``/``botocore``. Credentials come from boto3's default chain,
optionally exchanged for an assumed role whose credentials refresh themselves before expiry. One
fetch is one ``GetSecretValue`` on the happy path: botocore's retries are off, backoff is the
caller's job.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.parsers
import botocore.session
import pydantic
from pydantic import alias_generators

from backends import base

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

log = logging.getLogger(__name__)

SESSION_NAME = "pullsecret-syncer"
CLIENT_CONFIG = botocore.config.Config(
    connect_timeout=5,
    read_timeout=10,
    retries={"mode": "standard", "total_max_attempts": 1},
)

_MODEL_CONFIG = pydantic.ConfigDict(
    extra="forbid", populate_by_name=True, alias_generator=alias_generators.to_camel
)


class AwsSettings(pydantic.BaseModel):
    """The ``backends.<name>`` block of ``type: aws-secrets-manager`` (without ``type``)."""

    model_config = _MODEL_CONFIG

    region: str | None = pydantic.Field(default=None, description="Default: boto3's chain.")
    endpoint_url: str | None = pydantic.Field(
        default=None, description="Secrets Manager endpoint (tests, LocalStack, VPC endpoints)."
    )
    assume_role_arn: str | None = pydantic.Field(
        default=None, description="Role to assume with the default-chain credentials."
    )
    external_id: str | None = pydantic.Field(
        default=None, min_length=2, description="ExternalId for AssumeRole (needs assumeRoleArn)."
    )

    @pydantic.model_validator(mode="after")
    def _external_id_needs_role(self) -> AwsSettings:
        if self.external_id is not None and not self.assume_role_arn:
            raise ValueError("externalId needs assumeRoleArn")
        return self


class AwsRef(pydantic.BaseModel):
    """The aws-specific keys of a ``credentials.<name>`` block."""

    model_config = _MODEL_CONFIG

    secret_id: str = pydantic.Field(min_length=1, description="Secret name or ARN.")
    version_stage: str = pydantic.Field(
        default="AWSCURRENT", min_length=1, description="Version stage to read."
    )


# The one place where library errors become ours. Codes are AWS identifiers (safe to show); the
# service's message text is never shown.
_NOT_FOUND = frozenset({"ResourceNotFoundException", "InvalidRequestException"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "ExpiredToken",
        "ExpiredTokenException",
        "DecryptionFailure",
        "RegionDisabledException",
    }
)
_UNAVAILABLE = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalServiceErrorException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


def _wrap(exc: Exception, what: str) -> base.BackendError:
    """Our error for a library exception raised doing ``what``: no values, no library text."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        shown = f"{exc.operation_name}: {code}, HTTP {status}"
        if code in _NOT_FOUND:
            return base.NotFound(f"{what}: not found ({shown})")
        if code in _DENIED or status in (401, 403):
            return base.AccessDenied(f"{what}: access denied ({shown})")
        if code in _UNAVAILABLE or status == 429 or (isinstance(status, int) and status >= 500):
            return base.Unavailable(f"{what}: service unavailable ({shown})")
        return base.BackendError(f"{what}: request failed ({shown})")
    if isinstance(
        exc,
        botocore.exceptions.NoCredentialsError
        | botocore.exceptions.PartialCredentialsError
        | botocore.exceptions.CredentialRetrievalError,
    ):
        return base.AccessDenied(f"{what}: no usable AWS credentials ({type(exc).__name__})")
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return base.Misconfigured(f"{what}: no region (set region or AWS_REGION)")
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return base.BackendError(f"{what}: invalid request parameters")
    if isinstance(
        exc, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.ReadTimeoutError
    ):
        return base.Unavailable(f"{what}: timed out")
    if isinstance(exc, botocore.exceptions.SSLError):
        return base.Unavailable(f"{what}: TLS handshake or certificate verification failed")
    if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
        return base.Unavailable(f"{what}: cannot reach the service ({type(exc).__name__})")
    if isinstance(exc, botocore.parsers.ResponseParserError):
        return base.Unavailable(f"{what}: unparseable response from the service")
    return base.Unavailable(f"{what}: unexpected failure ({type(exc).__name__})")


def _cause(exc: Exception) -> Exception | None:
    """The exception to chain: none for a garbled response, whose error text quotes the body."""
    return None if isinstance(exc, botocore.parsers.ResponseParserError) else exc


class _NoCache(dict[str, Any]):
    """A credential cache that keeps nothing, so refresh decisions use only our clock."""

    def __setitem__(self, key: str, value: Any) -> None:
        pass


def _aware_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class _AssumedRoleProvider(botocore.credentials.CredentialProvider):
    """Credentials of an assumed role, fetched on first use and refreshed before they expire."""

    METHOD = "pullsecret-syncer-assume-role"

    def __init__(
        self,
        fetcher: botocore.credentials.AssumeRoleCredentialFetcher,
        *,
        wall_clock: Callable[[], datetime.datetime],
    ) -> None:
        super().__init__()
        self._fetcher = fetcher
        self._wall_clock = wall_clock

    def load(self) -> botocore.credentials.Credentials:
        return botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=self._fetcher.fetch_credentials,
            method=self.METHOD,
            time_fetcher=self._wall_clock,
        )


class AwsSecretsManagerBackend:
    """A Secrets Manager client for one backend block; thread-safe. Create with :func:`create`."""

    def __init__(
        self,
        name: str,
        settings: AwsSettings,
        *,
        wall_clock: Callable[[], datetime.datetime] = _aware_now,
    ) -> None:
        self.name = name
        self._settings = settings
        self._wall_clock = wall_clock  # compared with the assumed credentials' expiry
        # boto3's chain (AWS_DEFAULT_REGION, profile); AWS_REGION as the other SDKs read it.
        region = boto3.session.Session(region_name=settings.region).region_name or os.environ.get(
            "AWS_REGION"
        )
        if not region:
            raise base.Misconfigured(
                f"aws backend {name!r}: no region (set region, AWS_REGION, AWS_DEFAULT_REGION "
                "or a profile's region)"
            )
        self.region: str = region
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._client: SecretsManagerClient | None = None

    def __repr__(self) -> str:
        role = self._settings.assume_role_arn
        return f"AwsSecretsManagerBackend({self.name!r}, region={self.region!r}, role={role!r})"

    # -- Backend protocol -------------------------------------------------------------------

    def fetch(self, ref: base.CredentialRef) -> base.Payload:
        opts = ref.options
        if not isinstance(opts, AwsRef):
            raise base.BackendError(
                f"aws backend {self.name!r}: credential {ref.name!r} has no aws-secrets-manager ref"
            )
        what = f"aws backend {self.name!r}: read {opts.secret_id!r} ({opts.version_stage})"
        try:
            resp = self._secretsmanager().get_secret_value(
                SecretId=opts.secret_id, VersionStage=opts.version_stage
            )
        except base.BackendError:
            raise
        except Exception as exc:
            raise _wrap(exc, what) from _cause(exc)
        version = resp.get("VersionId")
        return base.Payload(data=_parse(resp, what), version=str(version) if version else None)

    def check(self) -> None:
        what = f"aws backend {self.name!r}: resolve credentials"
        if self._settings.assume_role_arn:
            what += f" and assume {self._settings.assume_role_arn}"
        try:
            credentials = self._boto_session().get_credentials()
            if credentials is None:
                raise base.AccessDenied(f"{what}: no AWS credentials found in the default chain")
            credentials.get_frozen_credentials()  # assumes the role now if one is configured
        except base.BackendError:
            raise
        except Exception as exc:
            raise _wrap(exc, what) from _cause(exc)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- sessions ---------------------------------------------------------------------------

    def _secretsmanager(self) -> SecretsManagerClient:
        with self._lock:
            if self._client is None:
                self._client = self._boto_session_locked().client(
                    "secretsmanager",
                    region_name=self.region,
                    endpoint_url=self._settings.endpoint_url,
                    config=CLIENT_CONFIG,
                )
            return self._client

    def _boto_session(self) -> boto3.session.Session:
        with self._lock:
            return self._boto_session_locked()

    def _boto_session_locked(self) -> boto3.session.Session:
        """The session whose credentials sign requests (built on first use; may do I/O)."""
        if self._session is not None:
            return self._session
        source = boto3.session.Session(region_name=self.region)
        role_arn = self._settings.assume_role_arn
        if not role_arn:
            self._session = source
            return source
        source_credentials = source.get_credentials()
        if source_credentials is None:
            raise base.AccessDenied(
                f"aws backend {self.name!r}: no AWS credentials in the default chain to assume "
                f"{role_arn} with"
            )
        extra: dict[str, Any] = {"RoleSessionName": SESSION_NAME}
        if self._settings.external_id:
            extra["ExternalId"] = self._settings.external_id

        def sts_client(service: str, **kwargs: Any) -> Any:
            # STS the standard way (region, AWS_ENDPOINT_URL_STS), never our endpointUrl.
            return source.client(service, region_name=self.region, config=CLIENT_CONFIG, **kwargs)  # type: ignore[call-overload]

        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=sts_client,
            source_credentials=source_credentials,
            role_arn=role_arn,
            extra_args=extra,
            cache=_NoCache(),  # the refreshable credentials below are the one cache and clock
        )
        assumed = botocore.session.Session()
        assumed.register_component(
            "credential_provider",
            botocore.credentials.CredentialResolver(
                providers=[_AssumedRoleProvider(fetcher, wall_clock=self._wall_clock)]
            ),
        )
        self._session = boto3.session.Session(botocore_session=assumed, region_name=self.region)
        log.info("assuming role for aws backend", extra={"backend": self.name})
        return self._session


def _parse(resp: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """The JSON object in SecretString or SecretBinary; never quotes the content or json's text."""
    if resp.get("SecretString") is not None:
        source, text = "SecretString", resp["SecretString"]
    elif resp.get("SecretBinary") is not None:
        source = "SecretBinary"
        try:
            text = bytes(resp["SecretBinary"]).decode("utf-8")
        except (UnicodeDecodeError, TypeError):
            raise base.InvalidPayload(f"{what}: SecretBinary is not UTF-8 JSON") from None
    else:
        raise base.InvalidPayload(f"{what}: the secret has neither SecretString nor SecretBinary")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise base.InvalidPayload(f"{what}: {source} is not valid JSON") from None
    if not isinstance(data, dict):
        raise base.InvalidPayload(f"{what}: {source} is not a JSON object")
    return data


def create(name: str, settings: Any) -> AwsSecretsManagerBackend:
    """The plugin factory: validates ``settings`` if given as a mapping; no network I/O."""
    if not isinstance(settings, AwsSettings):
        settings = AwsSettings.model_validate(settings)
    return AwsSecretsManagerBackend(name, settings)


PLUGIN = base.BackendPlugin(
    type_name="aws-secrets-manager", settings_model=AwsSettings, ref_model=AwsRef, factory=create
)
