"""The aws-secrets-manager backend against a real moto server (Secrets Manager and STS).

Request counts come from fault proxies in front of moto (one for Secrets Manager, one for STS),
never from the client under test. Every error is checked for leaked sentinel values.
"""

from __future__ import annotations

import datetime
import json
import socket
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stack import aws as aws_stack

from backends import aws as aws_backend
from backends import base

pytestmark = pytest.mark.integration

SENTINEL = "pw-SENTINEL-7f3a"
ROLE_ARN = "arn:aws:iam::123456789012:role/pull-creds"
ANY_REQUEST = "^/$"  # Secrets Manager and STS (JSON / query protocols) both POST to /


def assert_clean(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc)
    assert "SENTINEL" not in text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def aws_env(aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """boto3's default chain sees only the moto dummy credentials and region."""
    aws_stack.isolate_default_chain(aws, monkeypatch, tmp_path)
    return monkeypatch


@pytest.fixture
def open_backend(aws_env: Any) -> Iterator[Callable[..., aws_backend.AwsSecretsManagerBackend]]:
    made: list[aws_backend.AwsSecretsManagerBackend] = []

    def make(settings: dict[str, Any], **kwargs: Any) -> aws_backend.AwsSecretsManagerBackend:
        model = aws_backend.AwsSettings.model_validate(settings)
        backend = aws_backend.AwsSecretsManagerBackend("aws-test", model, **kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def ref(secret_id: str, **extra: str) -> base.CredentialRef:
    options = aws_backend.AwsRef.model_validate({"secretId": secret_id, **extra})
    return base.CredentialRef(name="ghcr", options=options)


@pytest.fixture
def secretsmanager(aws: Any) -> Any:
    return aws.client("secretsmanager")


@pytest.fixture
def secret(secretsmanager: Any, unique: str) -> dict[str, str]:
    name = f"prod/registry/ghcr-{unique}"
    created = secretsmanager.create_secret(
        Name=name, SecretString=json.dumps({"username": "robot", "password": SENTINEL})
    )
    return {"name": name, "arn": created["ARN"], "version": created["VersionId"]}


# -- reads -----------------------------------------------------------------------------------


def test_secret_string_json_object_is_the_payload_with_its_version_id(
    aws: Any, open_backend: Any, secret: dict[str, str]
) -> None:
    backend = open_backend({"region": aws.region, "endpointUrl": aws.endpoint})

    by_name = backend.fetch(ref(secret["name"]))
    by_arn = backend.fetch(ref(secret["arn"]))

    assert dict(by_name.data) == {"username": "robot", "password": SENTINEL}
    assert by_name.version == secret["version"]
    assert dict(by_arn.data) == dict(by_name.data)
    assert SENTINEL not in repr(by_name)


def test_secret_binary_holding_json_is_parsed(
    aws: Any, open_backend: Any, secretsmanager: Any, unique: str
) -> None:
    doc = {"auths": {"ghcr.io": {"auth": "cm9ib3Q6cHctU0VOVElORUw="}}}
    secretsmanager.create_secret(Name=f"bin-{unique}", SecretBinary=json.dumps(doc).encode())
    backend = open_backend({"endpointUrl": aws.endpoint})

    assert dict(backend.fetch(ref(f"bin-{unique}")).data) == doc


def test_pending_version_is_never_read_while_rotation_is_in_flight(
    aws: Any, open_backend: Any, secretsmanager: Any, secret: dict[str, str]
) -> None:
    secretsmanager.put_secret_value(
        SecretId=secret["name"],
        SecretString=json.dumps({"username": "robot", "password": SENTINEL + "-next"}),
        VersionStages=["AWSPENDING"],
    )
    backend = open_backend({"endpointUrl": aws.endpoint})

    current = backend.fetch(ref(secret["name"]))
    pending = backend.fetch(ref(secret["name"], versionStage="AWSPENDING"))

    assert dict(current.data)["password"] == SENTINEL
    assert current.version == secret["version"]
    assert dict(pending.data)["password"] == SENTINEL + "-next"


def test_rotated_current_version_is_read_after_the_stage_moves(
    aws: Any, open_backend: Any, secretsmanager: Any, secret: dict[str, str]
) -> None:
    backend = open_backend({"endpointUrl": aws.endpoint})
    backend.fetch(ref(secret["name"]))
    put = secretsmanager.put_secret_value(
        SecretId=secret["name"], SecretString=json.dumps({"password": SENTINEL + "-rotated"})
    )

    payload = backend.fetch(ref(secret["name"]))

    assert dict(payload.data) == {"password": SENTINEL + "-rotated"}
    assert payload.version == put["VersionId"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"SecretString": '{"password": "' + SENTINEL + '"'}, "SecretString is not valid JSON"),
        ({"SecretString": json.dumps([SENTINEL])}, "SecretString is not a JSON object"),
        ({"SecretString": SENTINEL}, "SecretString is not valid JSON"),
        ({"SecretBinary": b"\xff\xfe" + SENTINEL.encode()}, "SecretBinary is not UTF-8 JSON"),
        ({"SecretBinary": json.dumps(SENTINEL).encode()}, "SecretBinary is not a JSON object"),
    ],
    ids=["truncated-json", "json-list", "plain-text", "binary-not-utf8", "binary-json-string"],
)
def test_content_that_is_not_a_json_object_is_invalid_payload(
    aws: Any, open_backend: Any, secretsmanager: Any, unique: str, content: dict[str, Any],
    message: str,
) -> None:
    secretsmanager.create_secret(Name=f"bad-{unique}", **content)
    backend = open_backend({"endpointUrl": aws.endpoint})

    with pytest.raises(base.InvalidPayload) as caught:
        backend.fetch(ref(f"bad-{unique}"))

    assert message in str(caught.value)
    assert f"bad-{unique}" in str(caught.value)
    assert_clean(caught.value)


def test_missing_secret_is_not_found_naming_the_secret(
    aws: Any, open_backend: Any, unique: str
) -> None:
    backend = open_backend({"endpointUrl": aws.endpoint})

    with pytest.raises(base.NotFound) as caught:
        backend.fetch(ref(f"nothing-{unique}"))

    assert f"nothing-{unique}" in str(caught.value)
    assert "ResourceNotFoundException" in str(caught.value)
    assert_clean(caught.value)


def test_missing_version_stage_is_not_found(
    aws: Any, open_backend: Any, secret: dict[str, str]
) -> None:
    backend = open_backend({"endpointUrl": aws.endpoint})

    with pytest.raises(base.NotFound) as caught:
        backend.fetch(ref(secret["name"], versionStage="NO-SUCH-STAGE"))

    assert "NO-SUCH-STAGE" in str(caught.value)
    assert_clean(caught.value)


# -- requests and errors ---------------------------------------------------------------------


def test_each_fetch_is_exactly_one_get_secret_value(
    aws: Any, open_backend: Any, fault_proxy: Any, secret: dict[str, str]
) -> None:
    proxy = fault_proxy(aws.endpoint)
    backend = open_backend({"endpointUrl": proxy.url})

    for _ in range(4):
        backend.fetch(ref(secret["name"]))

    assert proxy.count(method="POST", path=ANY_REQUEST) == 4
    assert proxy.count() == 4


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_unavailable_after_one_attempt(
    aws: Any, open_backend: Any, fault_proxy: Any, secret: dict[str, str], status: int
) -> None:
    proxy = fault_proxy(aws.endpoint)
    backend = open_backend({"endpointUrl": proxy.url})
    proxy.fail(status, times=1)

    with pytest.raises(base.Unavailable) as caught:
        backend.fetch(ref(secret["name"]))
    recovered = backend.fetch(ref(secret["name"]))

    assert caught.value.retryable
    assert str(status) in str(caught.value)
    assert proxy.count() == 2  # no hidden retry: the caller owns backoff
    assert dict(recovered.data)["password"] == SENTINEL


def test_access_denied_is_reported_as_such(
    aws: Any, open_backend: Any, fault_proxy: Any, secret: dict[str, str]
) -> None:
    proxy = fault_proxy(aws.endpoint)
    backend = open_backend({"endpointUrl": proxy.url})
    proxy.fail(403)

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref(secret["name"]))

    assert "AccessDeniedException" in str(caught.value)
    assert_clean(caught.value)


def test_endpoint_down_is_unavailable(open_backend: Any) -> None:
    backend = open_backend({"endpointUrl": f"http://127.0.0.1:{free_port()}"})

    with pytest.raises(base.Unavailable) as caught:
        backend.fetch(ref("prod/registry/ghcr"))

    assert "prod/registry/ghcr" in str(caught.value)
    assert_clean(caught.value)


def test_check_resolves_credentials_without_reading_a_secret(
    aws: Any, open_backend: Any, fault_proxy: Any
) -> None:
    proxy = fault_proxy(aws.endpoint)
    backend = open_backend({"endpointUrl": proxy.url})

    backend.check()

    assert proxy.count() == 0


def test_check_without_any_credentials_is_access_denied(
    aws: Any, open_backend: Any, aws_env: Any
) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    backend = open_backend({"endpointUrl": aws.endpoint})

    with pytest.raises(base.AccessDenied) as caught:
        backend.check()

    assert "no AWS credentials" in str(caught.value)
    assert_clean(caught.value)


# -- assumed role ----------------------------------------------------------------------------


@pytest.fixture
def proxies(aws: Any, fault_proxy: Any, aws_env: Any) -> dict[str, Any]:
    """Separate proxies for Secrets Manager (endpointUrl) and STS (AWS_ENDPOINT_URL_STS)."""
    sts, sm = fault_proxy(aws.endpoint), fault_proxy(aws.endpoint)
    aws_env.setenv("AWS_ENDPOINT_URL_STS", sts.url)
    return {"sts": sts, "sm": sm}


def test_assumed_role_reaches_sts_the_standard_way_and_caches_its_credentials(
    open_backend: Any, proxies: dict[str, Any], secret: dict[str, str]
) -> None:
    backend = open_backend(
        {"endpointUrl": proxies["sm"].url, "assumeRoleArn": ROLE_ARN, "externalId": "pss-ext"}
    )

    for _ in range(3):
        assert dict(backend.fetch(ref(secret["name"])).data)["password"] == SENTINEL

    assert proxies["sts"].count(method="POST", path=ANY_REQUEST) == 1  # AssumeRole, once
    assert proxies["sm"].count(method="POST", path=ANY_REQUEST) == 3  # GetSecretValue only


def test_assumed_role_credentials_refresh_before_they_expire(
    open_backend: Any, proxies: dict[str, Any], secret: dict[str, str]
) -> None:
    offset = datetime.timedelta(0)

    def wall_clock() -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + offset

    backend = open_backend(
        {"endpointUrl": proxies["sm"].url, "assumeRoleArn": ROLE_ARN}, wall_clock=wall_clock
    )
    backend.fetch(ref(secret["name"]))
    offset = datetime.timedelta(minutes=30)  # moto grants 1 h: still fresh
    backend.fetch(ref(secret["name"]))
    fresh_calls = proxies["sts"].count()
    offset = datetime.timedelta(minutes=55)  # 5 min left: must refresh first
    backend.fetch(ref(secret["name"]))

    assert fresh_calls == 1
    assert proxies["sts"].count(method="POST", path=ANY_REQUEST) == 2


def test_check_assumes_the_role_without_reading_a_secret(
    open_backend: Any, proxies: dict[str, Any]
) -> None:
    backend = open_backend({"endpointUrl": proxies["sm"].url, "assumeRoleArn": ROLE_ARN})

    backend.check()

    assert proxies["sts"].count(method="POST", path=ANY_REQUEST) == 1
    assert proxies["sm"].count() == 0


STS_DENIED = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
    "<Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error>"
    "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
)


def test_sts_refusing_the_role_is_access_denied(
    open_backend: Any, proxies: dict[str, Any], secret: dict[str, str]
) -> None:
    proxies["sts"].fail(403, body=STS_DENIED, headers={"Content-Type": "text/xml"})
    backend = open_backend({"endpointUrl": proxies["sm"].url, "assumeRoleArn": ROLE_ARN})

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref(secret["name"]))

    assert "AssumeRole" in str(caught.value)
    assert_clean(caught.value)
    assert proxies["sm"].count() == 0
