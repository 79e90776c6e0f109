"""What the AWS backends (``aws-secrets-manager``, ``aws-ecr``) share: their backend block, the
boto3 session that signs their requests (optionally an assumed role) and the one map from
botocore's errors to ours.

With backends.aws and backends.ecr, the only modules that import ``boto3``/``botocore``.
Credentials come from boto3's default chain, optionally exchanged for an assumed role whose
credentials refresh themselves before expiry; STS is reached the standard boto3 way (region,
``AWS_ENDPOINT_URL_STS``), never through ``endpointUrl``, which is the service's own. botocore's
retries are off: one call is one request, backoff is the caller's job.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import boto3
import botocore.client
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.parsers
import botocore.session
import pydantic

from backends import base

log = logging.getLogger(__name__)

SESSION_NAME = "pullsecret-syncer"
CLIENT_CONFIG = botocore.config.Config(
    connect_timeout=5,
    read_timeout=10,
    retries={"mode": "standard", "total_max_attempts": 1},
)

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)


class AwsSettings(base.StrictBlock):
    """The keys every AWS backend block has (without ``type``)."""

    region: str | None = pydantic.Field(default=None, description="Default: boto3's chain.")
    endpoint_url: str | None = pydantic.Field(
        default=None,
        description="The service's endpoint, not STS's (tests, LocalStack, VPC endpoints).",
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
        "ServerException",  # ECR's 500
    }
)


def wrap(exc: Exception, what: str) -> base.BackendError:
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


def call(what: str, request: Callable[[], T]) -> T:
    """``request()``, with any library exception replaced by :func:`wrap`'s error."""
    try:
        return request()
    except base.BackendError:
        raise
    except Exception as exc:
        # No cause for a garbled response: its error text quotes the body.
        cause = None if isinstance(exc, botocore.parsers.ResponseParserError) else exc
        raise wrap(exc, what) from cause


class _NoCache(dict[str, Any]):
    """A credential cache that keeps nothing, so refresh decisions use only our clock."""

    def __setitem__(self, key: str, value: Any) -> None:
        pass


def aware_now() -> datetime.datetime:
    """The wall clock as botocore compares it with credential expiry."""
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


class AwsBackend:
    """The base of the AWS backends: region, signing session and one client of ``SERVICE`` for
    one backend block. Subclasses set ``SERVICE`` and implement ``fetch``.

    Thread-safe; the session and client are built on first use (that may do I/O: AssumeRole).
    Raises :class:`base.Misconfigured` at construction when no region is known.
    """

    SERVICE: ClassVar[str]

    def __init__(
        self,
        name: str,
        settings: AwsSettings,
        *,
        wall_clock: Callable[[], datetime.datetime] = aware_now,
    ) -> None:
        self.name = name
        self.settings = settings
        self._wall_clock = wall_clock  # compared with the assumed credentials' expiry
        # boto3's chain (AWS_DEFAULT_REGION, profile); AWS_REGION as the other SDKs read it.
        try:
            chain = boto3.session.Session(region_name=settings.region)
        except botocore.exceptions.ProfileNotFound:
            raise base.Misconfigured(
                f"aws backend {name!r}: AWS profile {os.environ.get('AWS_PROFILE', '')!r} does "
                "not exist (AWS_PROFILE / AWS_DEFAULT_PROFILE, or the config file)"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:  # e.g. an unparsable ~/.aws/config
            raise base.Misconfigured(
                f"aws backend {name!r}: AWS configuration is not usable ({type(exc).__name__})"
            ) from None
        region = chain.region_name or os.environ.get("AWS_REGION")
        if not region:
            raise base.Misconfigured(
                f"aws backend {name!r}: no region (set region, AWS_REGION, AWS_DEFAULT_REGION "
                "or a profile's region)"
            )
        self.region: str = region
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._client: botocore.client.BaseClient | None = None

    def __repr__(self) -> str:
        role = self.settings.assume_role_arn
        return f"{type(self).__name__}({self.name!r}, region={self.region!r}, role={role!r})"

    def options(self, ref: base.CredentialRef, model: type[M]) -> M:
        """``ref.options`` as the backend's ``model`` (its plugin's ref_model)."""
        if not isinstance(ref.options, model):
            raise base.BackendError(
                f"aws backend {self.name!r}: credential {ref.name!r} has no {model.__name__}"
            )
        return ref.options

    def client(self) -> botocore.client.BaseClient:
        """The ``SERVICE`` client (subclasses cast it to its typed stub)."""
        with self._lock:
            if self._client is None:
                self._client = self._session_locked().client(  # type: ignore[call-overload]
                    self.SERVICE,
                    region_name=self.region,
                    endpoint_url=self.settings.endpoint_url,
                    config=CLIENT_CONFIG,
                )
            return self._client

    def check(self) -> None:
        """Resolve the signing credentials (assuming the role now if one is configured)."""
        role_arn = self.settings.assume_role_arn
        what = f"aws backend {self.name!r}: resolve credentials"
        if role_arn:
            what += f" and assume {role_arn}"

        def resolve() -> None:
            with self._lock:
                session = self._session_locked()
            credentials = session.get_credentials()
            if credentials is None:
                raise base.AccessDenied(f"{what}: no AWS credentials found in the default chain")
            credentials.get_frozen_credentials()

        call(what, resolve)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _session_locked(self) -> boto3.session.Session:
        """The session whose credentials sign requests (built on first use; may do I/O)."""
        if self._session is not None:
            return self._session
        source = boto3.session.Session(region_name=self.region)
        role_arn = self.settings.assume_role_arn
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
        if self.settings.external_id:
            extra["ExternalId"] = self.settings.external_id

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
