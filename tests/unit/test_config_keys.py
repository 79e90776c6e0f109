"""One key spelling and strict types everywhere, bounds, and the keys later features consume.

These load files with the real backend plugins (vault, aws-secrets-manager), so the backend
blocks are judged by the models that ship; a small fake plugin stands in for a token-issuing
backend (``issues_tokens = True``, as ``aws-ecr`` declares it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from pydantic.alias_generators import to_camel

import backends
from backends import base
from syncer import config

SENTINEL = "SENTINEL-keys-1"

BASE: dict[str, Any] = {
    "version": 1,
    "backends": {
        "vault-dev": {
            "type": "vault",
            "address": "https://vault.example.com",
            "auth": {"method": "kubernetes", "role": "puller"},
        },
    },
    "credentials": {
        "hub": {"backend": "vault-dev", "path": "registries/hub", "registry": "docker.io"},
    },
    "mappings": [
        {"name": "team-a", "namespaces": {"names": ["team-a"]}, "credentials": ["hub"]},
    ],
}


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def with_(**changes: Any) -> dict[str, Any]:
    """BASE with changes at dotted paths (``a__b``); a value of ``...`` deletes the key."""
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split("__")]
        node = doc
        for part in parents:
            node = node[part]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return doc


def problems(
    tmp_path: Path, doc: Any, *, plugins: dict[str, base.BackendPlugin] | None = None
) -> tuple[str, ...]:
    path = write(tmp_path, doc)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, plugins=plugins)
    for line in caught.value.problems:
        assert SENTINEL not in line, line
    return tuple(line.removeprefix(f"{path}: ") for line in caught.value.problems)


def load(
    tmp_path: Path, doc: Any, *, plugins: dict[str, base.BackendPlugin] | None = None
) -> config.Config:
    return config.load(write(tmp_path, doc), plugins=plugins)


# --- one spelling, strict types: the vault backend's blocks --------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "backends__vault-dev__auth",
            {"method": "token", "token_file": SENTINEL},
            "backends.vault-dev.auth.token_file: unknown key; did you mean 'tokenFile'?",
        ),
        (
            "backends__vault-dev__tls",
            {"insecure_skip_verify": True},
            "backends.vault-dev.tls.insecure_skip_verify: unknown key; did you mean "
            "'insecureSkipVerify'?",
        ),
        (
            "credentials__hub__kv_version",
            1,
            "credentials.hub.kv_version: unknown key; did you mean 'kvVersion'?",
        ),
        (
            "backends__vault-dev__tls",
            {"insecureSkipVerify": "yes"},
            "backends.vault-dev.tls.insecureSkipVerify: expected true or false",
        ),
        (
            "backends__vault-dev__tls",
            {"insecureSkipVerify": 1},
            "backends.vault-dev.tls.insecureSkipVerify: expected true or false",
        ),
        (
            "backends__vault-dev__tls",
            {"insecureSkipVerify": "true"},
            "backends.vault-dev.tls.insecureSkipVerify: expected true or false",
        ),
        ("credentials__hub__kvVersion", "2", "credentials.hub.kvVersion: expected 1 or 2"),
        ("credentials__hub__kvVersion", True, "credentials.hub.kvVersion: expected 1 or 2"),
        ("credentials__hub__kvVersion", 2.0, "credentials.hub.kvVersion: expected 1 or 2"),
        (
            "backends__vault-dev__address",
            8200,
            "backends.vault-dev.address: expected a string (quote the value in YAML)",
        ),
        (
            "backends__vault-dev__auth",
            {"method": "kubernetes", "role": "puller", "token": SENTINEL},
            "backends.vault-dev.auth.token: unknown key; did you mean 'tokenFile'?",
        ),
    ],
)
def test_vault_blocks_take_one_spelling_and_strict_types(
    tmp_path: Path, key: str, value: Any, expected: str
) -> None:
    assert problems(tmp_path, with_(**{key: value})) == (expected,)


def test_a_method_name_given_as_a_value_does_not_mangle_the_message(tmp_path: Path) -> None:
    # The message names the method; the value 'token' must not be "hidden" out of it.
    doc = with_(**{"backends__vault-dev__auth": {"method": "token", "roleId": "token"}})
    assert problems(tmp_path, doc) == (
        "backends.vault-dev.auth.roleId: does not apply to method token",
    )


# --- bounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0s", "500ms", "0.5s", 0.5, 0, "0m0.9s", "999ms"])
@pytest.mark.parametrize(
    "where", ["defaults__refreshInterval", "credentials__hub__refreshInterval"]
)
def test_refresh_interval_is_at_least_one_second(tmp_path: Path, value: Any, where: str) -> None:
    doc = with_(defaults={}) if where.startswith("defaults") else with_()
    parent = doc["defaults"] if where.startswith("defaults") else doc["credentials"]["hub"]
    parent["refreshInterval"] = value
    path = where.replace("__", ".")
    assert problems(tmp_path, doc) == (f"{path}: must be at least 1s",)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("tier", True),
        ("example.com/tier", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("x" * 253 + "/" + "n" * 63, True),
        ("x" * 254 + "/n", False),
        ("example.com/" + "n" * 64, False),
        ("Example.com/tier", False),
        ("/tier", False),
        ("a/b/c", False),
        ("example.com/", False),
        ("-tier", False),
        ("tier_x.y-z", True),
        ("kubernetes.io/metadata.name", True),
    ],
)
def test_label_keys_follow_kubernetes_rules(tmp_path: Path, key: str, ok: bool) -> None:
    doc = with_(mappings__0__namespaces={"selector": {"matchLabels": {key: "v"}}})
    if ok:
        assert load(tmp_path, doc).mappings[0].namespaces.selector is not None
        return
    (line,) = problems(tmp_path, doc)
    assert line.startswith("mappings[0].namespaces.selector.matchLabels"), line
    assert ": must be a label key: " in line, line


def test_label_key_messages_name_the_part_at_fault(tmp_path: Path) -> None:
    def first(key: str) -> str:
        doc = with_(
            mappings__0__namespaces={
                "selector": {"matchExpressions": [{"key": key, "operator": "Exists"}]}
            }
        )
        (line,) = problems(tmp_path, doc)
        return line.removeprefix("mappings[0].namespaces.selector.matchExpressions[0].key: ")

    assert first("a/b/c") == "must be a label key: [prefix/]name with at most one '/'"
    assert first("x" * 254 + "/n").startswith("must be a label key: the prefix before '/' must")
    assert first("n" * 64) == (
        "must be a label key: the name must be at most 63 letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit"
    )


@pytest.mark.parametrize(
    ("value", "ok"), [("", True), ("v" * 63, True), ("v" * 64, False), ("a b", False)]
)
def test_label_values_may_be_empty_and_at_most_63_characters(
    tmp_path: Path, value: str, ok: bool
) -> None:
    doc = with_(mappings__0__namespaces={"selector": {"matchLabels": {"tier": value}}})
    if ok:
        selector = load(tmp_path, doc).mappings[0].namespaces.selector
        assert selector is not None
        assert dict(selector.match_labels) == {"tier": value}
    else:
        assert problems(tmp_path, doc) == (
            "mappings[0].namespaces.selector.matchLabels.tier: must be a label value: empty or "
            "at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or "
            "digit",
        )


# --- registry keys in the config --------------------------------------------------------------


@pytest.mark.parametrize(
    ("registry", "key"),
    [
        ("https://harbor.example.com/v2/", "harbor.example.com"),
        ("harbor.example.com/v2/foo", "harbor.example.com/v2/foo"),
        ("registry-1.docker.io:443", "https://index.docker.io/v1/"),
        ("*.example.com", "*.example.com"),
        ("*.*.Example.com:5000", "*.*.example.com:5000"),
    ],
)
def test_config_registry_is_normalized_like_payload_keys(
    tmp_path: Path, registry: str, key: str
) -> None:
    cfg = load(tmp_path, with_(credentials__hub__registry=registry))
    assert cfg.credentials["hub"].registry == key


@pytest.mark.parametrize("registry", [" ghcr.io", "ghcr.io ", "ftp://ghcr.io", "*", "a b"])
def test_config_registry_refuses_what_is_not_a_registry(tmp_path: Path, registry: str) -> None:
    (line,) = problems(tmp_path, with_(credentials__hub__registry=registry))
    assert line.startswith("credentials.hub.registry: "), line


# --- verify -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (..., None),
        (False, None),
        (True, config.VerifySpec()),
        ({}, config.VerifySpec()),
        (
            {"caCert": "/etc/ca.pem", "insecureSkipVerify": False, "plainHttp": True},
            config.VerifySpec(ca_cert="/etc/ca.pem", plain_http=True),
        ),
        ({"insecureSkipVerify": True}, config.VerifySpec(insecure_skip_verify=True)),
    ],
)
def test_verify_parses_to_a_frozen_spec(
    tmp_path: Path, value: Any, expected: config.VerifySpec | None
) -> None:
    doc = with_(credentials__hub__verify=value) if value is not ... else with_()
    spec = load(tmp_path, doc).credentials["hub"]
    assert spec.verify == expected
    if spec.verify is not None:
        with pytest.raises(AttributeError):
            spec.verify.plain_http = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "yes",
            "credentials.hub.verify: expected true, false or a mapping (caCert, "
            "insecureSkipVerify, plainHttp)",
        ),
        (1, "credentials.hub.verify: expected true, false or a mapping"),
        ({"caCert": ""}, "credentials.hub.verify.caCert: must not be empty"),
        ({"caCert": 5}, "credentials.hub.verify.caCert: expected a string"),
        ({"plainHttp": "true"}, "credentials.hub.verify.plainHttp: expected true or false"),
        ({"ca_cert": "/x"}, "credentials.hub.verify.ca_cert: unknown key; did you mean 'caCert'?"),
    ],
)
def test_invalid_verify_blocks(tmp_path: Path, value: Any, expected: str) -> None:
    (line,) = problems(tmp_path, with_(credentials__hub__verify=value))
    assert line.startswith(expected), line


def test_verify_ca_cert_file_is_not_checked_by_the_loader(tmp_path: Path) -> None:
    doc = with_(credentials__hub__verify={"caCert": str(tmp_path / "missing.pem")})
    spec = load(tmp_path, doc).credentials["hub"]
    assert spec.verify == config.VerifySpec(ca_cert=str(tmp_path / "missing.pem"))


# --- recyclePods -----------------------------------------------------------------------------


def test_recycle_pods_is_off_unless_asked_for(tmp_path: Path) -> None:
    cfg = load(tmp_path, with_())
    assert cfg.defaults.recycle_pods is False
    assert cfg.mappings[0].recycle_pods is False


def test_recycle_pods_per_mapping_and_from_the_defaults(tmp_path: Path) -> None:
    doc = with_(defaults={"recyclePods": True})
    doc["mappings"].append(
        {"name": "b", "namespaces": {"names": ["b"]}, "credentials": ["hub"], "recyclePods": False}
    )
    cfg = load(tmp_path, doc)
    assert cfg.defaults.recycle_pods is True
    assert [m.recycle_pods for m in cfg.mappings] == [True, False]
    cfg = load(tmp_path, with_(mappings__0__recyclePods=True))
    assert cfg.mappings[0].recycle_pods is True


@pytest.mark.parametrize("where", ["defaults", "mappings__0"])
def test_recycle_pods_must_be_a_boolean(tmp_path: Path, where: str) -> None:
    doc = with_(defaults={}) if where == "defaults" else with_()
    target = doc["defaults"] if where == "defaults" else doc["mappings"][0]
    target["recyclePods"] = "yes"
    path = "defaults" if where == "defaults" else "mappings[0]"
    assert problems(tmp_path, doc) == (f"{path}.recyclePods: expected true or false",)


# --- token-issuing backends (issues_tokens) -----------------------------------------------------


_STRICT = pydantic.ConfigDict(
    extra="forbid", strict=True, alias_generator=to_camel, validate_by_name=False
)


class _TokenSettings(pydantic.BaseModel):
    model_config = _STRICT
    region: str | None = None


class _TokenRef(pydantic.BaseModel):
    model_config = _STRICT
    registry_id: str | None = None
    renew_before: float | None = None


def _no_factory(name: str, settings: Any) -> base.Backend:
    raise AssertionError("the loader must not connect to backends")


class _TokenPlugin:
    """A plugin that declares ``issues_tokens`` the way backends.base.BackendPlugin will."""

    type_name = "fake-tokens"
    settings_model = _TokenSettings
    ref_model = _TokenRef
    factory = staticmethod(_no_factory)
    issues_tokens = True


def _token_plugins() -> dict[str, Any]:
    return {**backends.plugins(), "fake-tokens": _TokenPlugin()}


def _token_doc(**credential: Any) -> dict[str, Any]:
    doc = with_()
    doc["backends"]["ecr"] = {"type": "fake-tokens", "region": "us-east-1"}
    doc["credentials"]["ecr-prod"] = {"backend": "ecr", **credential}
    doc["mappings"][0]["credentials"] = ["hub", "ecr-prod"]
    return doc


def test_token_credentials_are_marked_and_take_no_interval(tmp_path: Path) -> None:
    doc = _token_doc(registryId="123456789012")
    doc["defaults"] = {"refreshInterval": "5m"}  # applies to the other credentials only
    cfg = load(tmp_path, doc, plugins=_token_plugins())
    ecr, hub = cfg.credentials["ecr-prod"], cfg.credentials["hub"]
    assert (ecr.issues_tokens, hub.issues_tokens) == (True, False)
    assert ecr.registry is None
    assert hub.refresh_interval == 300.0


def test_a_token_credential_refuses_a_registry_naming_the_path(tmp_path: Path) -> None:
    got = problems(tmp_path, _token_doc(registry="ghcr.io"), plugins=_token_plugins())
    assert got == (
        "credentials.ecr-prod.registry: not allowed for backend type fake-tokens: the registry "
        "is the host of the token's proxyEndpoint",
    )


def test_a_token_credential_refuses_a_refresh_interval(tmp_path: Path) -> None:
    got = problems(tmp_path, _token_doc(refreshInterval="1h"), plugins=_token_plugins())
    assert got == (
        "credentials.ecr-prod.refreshInterval: not allowed for backend type fake-tokens: token "
        "credentials are renewed by expiry (renewBefore), not on an interval",
    )


def test_plugins_without_the_attribute_issue_no_tokens(tmp_path: Path) -> None:
    cfg = load(tmp_path, with_(credentials__hub__refreshInterval="30s"))
    assert cfg.credentials["hub"].issues_tokens is False
    assert cfg.credentials["hub"].refresh_interval == 30.0


def test_the_schema_of_a_token_credential_has_no_registry_or_interval() -> None:
    document = config.schema(plugins=_token_plugins())
    props = document["$defs"]["FakeTokensCredential"]["properties"]
    assert {"backend", "fields", "verify", "registryId", "renewBefore"} <= set(props)
    assert "registry" not in props and "refreshInterval" not in props
    assert "registry" in document["$defs"]["VaultCredential"]["properties"]
