"""Smoke tests proving the moto server of the stack answers like AWS Secrets Manager."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def test_put_secret_value_moves_awscurrent_and_awsprevious(aws, unique):
    sm = aws.client("secretsmanager")
    name = f"smoke/{unique}/registry"
    sm.create_secret(Name=name, SecretString='{"password": "pw-SENTINEL-1"}')
    sm.put_secret_value(SecretId=name, SecretString='{"password": "pw-SENTINEL-2"}')

    current = sm.get_secret_value(SecretId=name)
    previous = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")

    assert current["SecretString"] == '{"password": "pw-SENTINEL-2"}'
    assert "AWSCURRENT" in current["VersionStages"]
    assert previous["SecretString"] == '{"password": "pw-SENTINEL-1"}'


def test_binary_secret_round_trips(aws, unique):
    sm = aws.client("secretsmanager")
    name = f"smoke/{unique}/binary"
    sm.create_secret(Name=name, SecretBinary=b'{"auths": {}}')

    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == b'{"auths": {}}'


def test_missing_secret_is_resource_not_found(aws, unique):
    sm = aws.client("secretsmanager")

    with pytest.raises(ClientError) as info:
        sm.get_secret_value(SecretId=f"smoke/{unique}/absent")

    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
