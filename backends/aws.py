"""AWS Secrets Manager backend: reads one version stage of a secret whose content is a JSON object.

One fetch is one ``GetSecretValue``. The session, assumed role and error map are shared with the
ECR backend in `backends.aws_common`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import pydantic

from backends import aws_common, base

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class AwsSettings(aws_common.AwsSettings):
    """The ``backends.<name>`` block of ``type: aws-secrets-manager`` (without ``type``)."""


class AwsRef(base.StrictBlock):
    """The aws-specific keys of a ``credentials.<name>`` block."""

    secret_id: str = pydantic.Field(min_length=1, description="Secret name or ARN.")
    version_stage: str = pydantic.Field(
        default="AWSCURRENT", min_length=1, description="Version stage to read."
    )


class AwsSecretsManagerBackend(aws_common.AwsBackend):
    """A Secrets Manager client for one backend block; thread-safe. Create with :func:`create`."""

    SERVICE = "secretsmanager"

    def fetch(self, ref: base.CredentialRef) -> base.Payload:
        opts = self.options(ref, AwsRef)
        what = f"aws backend {self.name!r}: read {opts.secret_id!r} ({opts.version_stage})"
        resp = aws_common.call(
            what,
            lambda: self._secretsmanager().get_secret_value(
                SecretId=opts.secret_id, VersionStage=opts.version_stage
            ),
        )
        version = resp.get("VersionId")
        return base.Payload(data=_parse(resp, what), version=str(version) if version else None)

    def _secretsmanager(self) -> SecretsManagerClient:
        return cast("SecretsManagerClient", self.client())


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
