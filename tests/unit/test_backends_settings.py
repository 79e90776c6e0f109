"""Backend settings and factories, without servers: validation, defaults, config-time errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pydantic
import pytest

import backends
from backends import aws, base, vault


def vault_settings(**block: object) -> vault.VaultSettings:
    return vault.VaultSettings.model_validate(block)


# -- registry --------------------------------------------------------------------------------


def test_both_builtin_backends_are_registered_with_their_models() -> None:
    found = backends.plugins()

    assert found["vault"].settings_model is vault.VaultSettings
    assert found["vault"].ref_model is vault.VaultRef
    assert found["aws-secrets-manager"].settings_model is aws.AwsSettings
    assert found["aws-secrets-manager"].ref_model is aws.AwsRef


# -- vault settings --------------------------------------------------------------------------


def test_vault_defaults_to_token_auth_and_kv2_under_secret() -> None:
    settings = vault_settings()
    ref = vault.VaultRef.model_validate({"path": "registries/dockerhub"})

    assert settings.auth.method == "token"
    assert settings.tls.insecure_skip_verify is False
    assert (ref.mount, ref.kv_version) == ("secret", 2)


def test_vault_settings_accept_camel_case_keys_from_the_config_file() -> None:
    settings = vault_settings(
        tls={"caCert": "/etc/ca.pem", "insecureSkipVerify": False},
        auth={"method": "approle", "roleId": "r-1", "secretIdFile": "/run/secret-id"},
    )

    assert settings.tls.ca_cert == "/etc/ca.pem"
    assert settings.auth.secret_id_file == "/run/secret-id"
    assert settings.auth.mount_path == "approle"


def test_kubernetes_auth_defaults_its_mount() -> None:
    auth = vault_settings(auth={"method": "kubernetes", "role": "puller"}).auth

    assert auth.mount_path == "kubernetes"
    assert auth.jwt_file is None  # the ServiceAccount token path is used at login


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"method": "approle"},
            {("role_id",): "roleId is required", ("secret_id_file",): "secretIdFile is required"},
        ),
        ({"method": "approle", "roleId": "r"}, {("secret_id_file",): "secretIdFile is required"}),
        ({"method": "kubernetes"}, {("role",): "role is required for method kubernetes"}),
        ({"method": "token", "roleId": "r"}, {("roleId",): "does not apply to method token"}),
        ({"method": "kubernetes", "role": "x", "tokenFile": "/t"}, {("tokenFile",): "not apply"}),
    ],
)
def test_auth_keys_must_fit_the_method_one_problem_per_key(
    auth: dict[str, str], expected: dict[tuple[str, ...], str]
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        vault_settings(auth=auth)

    problems = {tuple(e["loc"][1:]): e["msg"] for e in caught.value.errors()}
    assert set(problems) == set(expected)
    for loc, fragment in expected.items():
        assert fragment in problems[loc]


@pytest.mark.parametrize("key", ["token", "secretId", "password"])
def test_inline_secret_values_are_not_accepted(key: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        vault_settings(auth={"method": "token", key: "s.SENTINEL"})


@pytest.mark.parametrize("value", [3, 0, True, 2.0, "2", None])
def test_kv_version_must_be_the_integer_1_or_2(value: object) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        vault.VaultRef.model_validate({"path": "a", "kvVersion": value})
    assert [e["msg"] for e in caught.value.errors()] == ["expected 1 or 2"]


@pytest.mark.parametrize(
    ("model", "block", "key"),
    [
        (vault.VaultSettings, {"auth": {"token_file": "/t"}}, ("auth", "token_file")),
        (
            vault.VaultSettings,
            {"auth": {"method": "kubernetes", "role": "r", "jwt_file": "/j"}},
            ("auth", "jwt_file"),
        ),
        (vault.VaultSettings, {"tls": {"ca_cert": "/ca.pem"}}, ("tls", "ca_cert")),
        (vault.VaultSettings, {"tls": {"insecure_skip_verify": True}}, ("tls",)),
        (vault.VaultRef, {"path": "a", "kv_version": 1}, ("kv_version",)),
    ],
)
def test_snake_case_spellings_are_unknown_keys(
    model: type[pydantic.BaseModel], block: dict[str, object], key: tuple[str, ...]
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(block)
    errors = caught.value.errors()
    assert [e["type"] for e in errors] == ["extra_forbidden"]
    assert tuple(errors[0]["loc"][: len(key)]) == key


@pytest.mark.parametrize("value", ["yes", "true", "on", 1, 0, "false", None, "SENTINEL"])
def test_booleans_must_be_yaml_booleans(value: object) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        vault_settings(tls={"insecureSkipVerify": value})
    assert [e["type"] for e in caught.value.errors()] == ["bool_type"]


@pytest.mark.parametrize(
    "block",
    [
        {"address": 8200},
        {"namespace": 1},
        {"auth": {"method": "approle", "roleId": 42, "secretIdFile": "/s"}},
    ],
)
def test_strings_must_be_strings(block: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        vault_settings(**block)
    assert [e["type"] for e in caught.value.errors()] == ["string_type"]


def test_settings_are_immutable() -> None:
    settings = vault_settings(address="https://vault:8200")
    with pytest.raises(pydantic.ValidationError):
        settings.address = "https://other"  # type: ignore[misc]


def test_vault_without_address_anywhere_is_misconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.setenv("VAULT_TOKEN", "t")

    with pytest.raises(base.Misconfigured, match=r"VAULT_ADDR"):
        vault.PLUGIN.factory("vault-dev", vault_settings())


def test_vault_address_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200/")
    monkeypatch.setenv("VAULT_TOKEN", "t")

    backend = vault.PLUGIN.factory("vault-dev", vault_settings())

    assert "http://127.0.0.1:8200" in repr(backend)
    backend.close()


def test_token_auth_without_file_or_env_is_misconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)

    with pytest.raises(base.Misconfigured, match=r"tokenFile or \$VAULT_TOKEN"):
        vault.PLUGIN.factory("vault-dev", vault_settings(address="http://127.0.0.1:8200"))


def test_missing_ca_cert_is_misconfigured(tmp_path: Path) -> None:
    settings = vault_settings(
        address="https://vault:8200",
        tls={"caCert": str(tmp_path / "nope.pem")},
        auth={"method": "kubernetes", "role": "r"},
    )

    with pytest.raises(base.Misconfigured, match=r"tls\.caCert"):
        vault.PLUGIN.factory("vault-dev", settings)


def test_insecure_skip_verify_is_logged_as_a_warning_naming_the_backend(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = vault_settings(
        address="https://vault:8200",
        tls={"insecureSkipVerify": True},
        auth={"method": "kubernetes", "role": "r"},
    )

    with caplog.at_level(logging.WARNING, logger="backends.vault"):
        vault.PLUGIN.factory("vault-prod", settings).close()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert getattr(warnings[0], "backend", None) == "vault-prod"


@pytest.mark.parametrize(
    "address",
    [
        "http://vault.example.com:8200",
        "http://10.0.0.5:8200",
        "HTTP://Vault:8200/",
        "http://[2001:db8::1]:8200",
        "http://[::ffff:10.0.0.1]:8200",
    ],
)
def test_plain_http_to_a_remote_host_warns_once_at_creation(
    caplog: pytest.LogCaptureFixture, address: str
) -> None:
    settings = vault_settings(address=address, auth={"method": "kubernetes", "role": "r"})

    with caplog.at_level(logging.WARNING, logger="backends.vault"):
        backend = vault.PLUGIN.factory("vault-prod", settings)
        backend.close()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "clear text" in warnings[0].getMessage()
    assert getattr(warnings[0], "backend", None) == "vault-prod"


def test_plain_http_from_vault_addr_warns_too(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://vault.vault.svc:8200")
    settings = vault_settings(auth={"method": "kubernetes", "role": "r"})

    with caplog.at_level(logging.WARNING, logger="backends.vault"):
        vault.PLUGIN.factory("from-env", settings).close()

    assert [r.getMessage() for r in caplog.records if "clear text" in r.getMessage()]


@pytest.mark.parametrize(
    "address",
    [
        "http://127.0.0.1:8200",
        "http://127.9.8.7:8200",
        "http://localhost:8200",
        "http://LOCALHOST.:8200",
        "http://[::1]:8200",
        "http://[::ffff:127.0.0.1]:8200",
        "https://vault.example.com:8200",
    ],
)
def test_https_and_loopback_addresses_do_not_warn(
    caplog: pytest.LogCaptureFixture, address: str
) -> None:
    settings = vault_settings(address=address, auth={"method": "kubernetes", "role": "r"})

    with caplog.at_level(logging.WARNING, logger="backends.vault"):
        vault.PLUGIN.factory("vault-dev", settings).close()

    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_factory_accepts_a_raw_mapping_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "t")

    backend = vault.PLUGIN.factory("v", {"address": "http://127.0.0.1:8200"})

    assert isinstance(backend, vault.VaultBackend)
    backend.close()


# -- aws settings ----------------------------------------------------------------------------


def test_aws_ref_defaults_to_the_current_stage() -> None:
    ref = aws.AwsRef.model_validate({"secretId": "prod/registry/ghcr"})

    assert ref.version_stage == "AWSCURRENT"


def test_aws_ref_requires_a_secret_id() -> None:
    with pytest.raises(pydantic.ValidationError):
        aws.AwsRef.model_validate({"versionStage": "AWSCURRENT"})


def test_external_id_needs_a_role_to_assume() -> None:
    with pytest.raises(pydantic.ValidationError, match="externalId needs assumeRoleArn"):
        aws.AwsSettings.model_validate({"externalId": "abc"})


def test_aws_without_any_region_is_misconfigured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    with pytest.raises(base.Misconfigured, match="no region"):
        aws.PLUGIN.factory("aws", aws.AwsSettings())


def test_aws_region_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)

    backend = aws.PLUGIN.factory("aws", aws.AwsSettings())

    assert isinstance(backend, aws.AwsSecretsManagerBackend)
    assert backend.region == "eu-west-1"
