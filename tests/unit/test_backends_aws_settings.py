"""The AWS backends' blocks (aws-secrets-manager, aws-ecr) without servers: strict camelCase keys
and types, aws-ecr's credential keys, the plugin registry, and what the config loader reports."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest

import backends
from backends import aws, base, ecr
from syncer import config

SETTINGS_MODELS = [aws.AwsSettings, ecr.EcrSettings]


# -- registry --------------------------------------------------------------------------------


def test_aws_ecr_is_a_registered_token_backend_and_secrets_manager_is_not() -> None:
    found = backends.plugins()

    assert found["aws-ecr"] is ecr.PLUGIN
    assert (found["aws-ecr"].settings_model, found["aws-ecr"].ref_model) == (
        ecr.EcrSettings, ecr.EcrRef)
    assert found["aws-ecr"].issues_tokens is True
    assert found["aws-secrets-manager"].issues_tokens is False
    assert getattr(found["vault"], "issues_tokens", False) is False


def test_entry_point_names_the_ecr_plugin() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")

    assert 'aws-ecr = "backends.ecr:PLUGIN"' in text


# -- strict blocks, like the rest of the config ----------------------------------------------


@pytest.mark.parametrize("model", SETTINGS_MODELS, ids=["secrets-manager", "ecr"])
def test_both_aws_backends_share_the_same_keys(model: type[pydantic.BaseModel]) -> None:
    settings = model.model_validate({
        "region": "eu-west-1", "endpointUrl": "http://127.0.0.1:5000",
        "assumeRoleArn": "arn:aws:iam::210987654321:role/pull", "externalId": "ext-1",
    })

    assert settings.model_dump() == {
        "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000",
        "assume_role_arn": "arn:aws:iam::210987654321:role/pull", "external_id": "ext-1",
    }


@pytest.mark.parametrize("model", SETTINGS_MODELS, ids=["secrets-manager", "ecr"])
@pytest.mark.parametrize(
    "block",
    [
        {"endpoint_url": "http://127.0.0.1:5000"},
        {"assume_role_arn": "arn:aws:iam::210987654321:role/pull"},
        {"region": 1},
        {"region": ["eu-west-1"]},
        {"externalId": "x", "assumeRoleArn": "arn:aws:iam::1:role/r"},  # too short
        {"externalId": "abc"},  # needs assumeRoleArn
        {"colour": "blue"},
    ],
    ids=["snake-endpoint", "snake-role", "int-region", "list-region", "short-external-id",
         "external-id-alone", "unknown-key"],
)
def test_aws_backend_block_rejects_other_spellings_and_types(
    model: type[pydantic.BaseModel], block: dict[str, Any]
) -> None:
    with pytest.raises(pydantic.ValidationError):
        model.model_validate(block)


@pytest.mark.parametrize(
    ("model", "block"),
    [
        (aws.AwsRef, {"secret_id": "prod/ghcr"}),
        (aws.AwsRef, {"secretId": "prod/ghcr", "version_stage": "AWSPENDING"}),
        (aws.AwsRef, {"secretId": 42}),
        (ecr.EcrRef, {"registry_id": "123456789012"}),
        (ecr.EcrRef, {"renew_before": "6h"}),
    ],
    ids=["snake-secret-id", "snake-version-stage", "int-secret-id", "snake-registry-id",
         "snake-renew-before"],
)
def test_aws_credential_keys_are_camel_case_and_strictly_typed(
    model: type[pydantic.BaseModel], block: dict[str, Any]
) -> None:
    with pytest.raises(pydantic.ValidationError):
        model.model_validate(block)


def test_validated_blocks_are_immutable() -> None:
    settings = ecr.EcrSettings.model_validate({"region": "eu-west-1"})
    ref = ecr.EcrRef.model_validate({})

    with pytest.raises(pydantic.ValidationError):
        settings.region = "us-east-1"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        ref.renew_before = 1.0  # type: ignore[misc]


# -- aws-ecr credential keys -----------------------------------------------------------------


def test_ecr_ref_defaults_to_the_callers_registry_and_half_the_lifetime() -> None:
    ref = ecr.EcrRef.model_validate({})

    assert (ref.registry_id, ref.renew_before) == (None, None)


@pytest.mark.parametrize(
    ("text", "seconds"), [("6h", 21600.0), ("1s", 1.0), ("1h30m", 5400.0), (90, 90.0)],
)
def test_renew_before_takes_the_config_duration_syntax(text: object, seconds: float) -> None:
    ref = ecr.EcrRef.model_validate({"renewBefore": text, "registryId": "123456789012"})

    assert ref.renew_before == seconds
    assert ref.registry_id == "123456789012"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"renewBefore": "500ms"}, "must be at least 1s"),
        ({"renewBefore": 0.5}, "must be at least 1s"),
        ({"renewBefore": 0}, "must be at least 1s"),
        ({"renewBefore": True}, "expected a duration"),
        ({"renewBefore": "soon"}, "expected a duration"),
        ({"registryId": "12345678901"}, "12-digit AWS account ID"),
        ({"registryId": "1234567890123"}, "12-digit AWS account ID"),
        ({"registryId": "12345678901a"}, "12-digit AWS account ID"),
        ({"registryId": "１２３４５６７８９０１２"}, "12-digit AWS account ID"),  # noqa: RUF001
        ({"registryId": 123456789012}, "valid string"),  # YAML without quotes: an int
    ],
    ids=["renew-ms", "renew-half-second", "renew-zero", "renew-bool", "renew-word",
         "registry-11-digits", "registry-13-digits", "registry-letter", "registry-fullwidth",
         "registry-int"],
)
def test_bad_ecr_credential_keys_are_rejected_with_a_reason(
    block: dict[str, Any], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        ecr.EcrRef.model_validate(block)


def test_ecr_factory_builds_a_backend_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)

    backend = ecr.PLUGIN.factory("ecr", {"assumeRoleArn": "arn:aws:iam::210987654321:role/p"})

    assert isinstance(backend, ecr.EcrBackend)
    assert repr(backend) == (
        "EcrBackend('ecr', region='eu-west-1', role='arn:aws:iam::210987654321:role/p')")
    backend.close()


def test_ecr_backend_refuses_a_credential_of_another_backend_type_without_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    backend = ecr.PLUGIN.factory("ecr", {"endpointUrl": "http://127.0.0.1:9"})
    wrong = base.CredentialRef(name="ghcr", options=aws.AwsRef.model_validate({"secretId": "x"}))

    with pytest.raises(base.BackendError, match="credential 'ghcr' has no EcrRef"):
        backend.fetch(wrong)


def test_payload_expiry_defaults_to_none_for_backends_that_do_not_issue_tokens() -> None:
    payload = base.Payload(data={"username": "u", "password": "pw-SENTINEL"})

    assert payload.expires_at is None
    assert "SENTINEL" not in repr(payload)


# -- through the config loader ---------------------------------------------------------------


CONFIG = """\
version: 1
backends:
  aws:
    type: aws-secrets-manager
    region: eu-west-1
  ecr:
    type: aws-ecr
    region: us-east-1
    assumeRoleArn: arn:aws:iam::210987654321:role/ecr-pull
credentials:
  ghcr:
    backend: aws
    secretId: prod/registry/ghcr
  ecr-prod:
    backend: ecr
    registryId: "210987654321"
    renewBefore: 6h
mappings:
  - name: all
    namespaces: {patterns: ["*"]}
    credentials: [ecr-prod, ghcr]
"""


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return config.load(path)


def test_config_with_an_ecr_credential_loads_its_options(tmp_path: Path) -> None:
    cfg = load(tmp_path, CONFIG)

    options = cfg.credentials["ecr-prod"].ref.options
    assert isinstance(options, ecr.EcrRef)
    assert (options.registry_id, options.renew_before) == ("210987654321", 21600.0)
    assert isinstance(cfg.backends["ecr"].settings, ecr.EcrSettings)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("    assumeRoleArn:", "    assume_role_arn:",
         "backends.ecr.assume_role_arn: unknown key; did you mean 'assumeRoleArn'?"),
        ('    registryId: "210987654321"', "    registryId: 210987654321",
         "credentials.ecr-prod.registryId: expected a string"),
        ("    renewBefore: 6h", "    renewBefore: 500ms",
         "credentials.ecr-prod.renewBefore: must be at least 1s"),
        ("    renewBefore: 6h", "    renew_before: 6h",
         "credentials.ecr-prod.renew_before: unknown key; did you mean 'renewBefore'?"),
        ("    secretId:", "    secret_id:",
         "credentials.ghcr.secret_id: unknown key; did you mean 'secretId'?"),
    ],
    ids=["snake-backend-key", "unquoted-registry-id", "short-renew-before", "snake-renew-before",
         "snake-secret-id"],
)
def test_config_errors_in_aws_blocks_name_the_key(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    assert old in CONFIG

    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, CONFIG.replace(old, new))

    assert any(problem in line for line in caught.value.problems), caught.value.problems
