"""The aws-ecr backend against a real moto server (ECR and STS) in server mode.

moto's GetAuthorizationToken is deterministic and expired since 2015-01-01, so most tests talk
to it through `stack.ecrtokens.EcrTokenProxy`, a small proxy that rewrites exactly two fields of
that one answer — a new token per call, expiresAt = now + 12 h (or a fixed clock) — and relays
everything else from moto as is. It also records the access key that signed each request.
Faults come from the fault proxy in front of it. One test reads moto's own answer unchanged.
Every error is checked for leaked tokens and passwords.
"""

from __future__ import annotations

import base64
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stack import aws as aws_stack
from stack import ecrtokens, procs

from backends import base, ecr
from syncer.core import dockerconfig

pytestmark = pytest.mark.integration

SENTINEL = "SENTINEL"
ACCOUNT = "123456789012"  # moto's default account: the caller's
OTHER = "210987654321"
HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
ROLE_ARN = f"arn:aws:iam::{OTHER}:role/ecr-pull"
FIXED_NOW = 1_900_000_000.0


def assert_clean(exc: BaseException, proxy: ecrtokens.EcrTokenProxy | None = None) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc)
    for value in [SENTINEL, *(proxy.secrets() if proxy else [])]:
        assert value not in text


@pytest.fixture
def aws_env(aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """boto3's default chain sees only the moto dummy credentials and region."""
    aws_stack.isolate_default_chain(aws, monkeypatch, tmp_path)
    return monkeypatch


@pytest.fixture
def tokens(aws: Any) -> Iterator[ecrtokens.EcrTokenProxy]:
    """moto's ECR behind the token-rewriting proxy; passwords carry the sentinel."""
    proxy = ecrtokens.EcrTokenProxy(aws.endpoint, marker=SENTINEL).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def open_backend(aws_env: Any) -> Iterator[Callable[..., ecr.EcrBackend]]:
    made: list[ecr.EcrBackend] = []

    def make(settings: dict[str, Any]) -> ecr.EcrBackend:
        backend = ecr.PLUGIN.factory("ecr-test", settings)
        assert isinstance(backend, ecr.EcrBackend)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def ref(**options: Any) -> base.CredentialRef:
    return base.CredentialRef(name="ecr-prod", options=ecr.EcrRef.model_validate(options))


# -- the token as a Docker config ------------------------------------------------------------


def test_token_becomes_a_docker_config_for_the_proxy_endpoint_host(
    open_backend: Any, tokens: ecrtokens.EcrTokenProxy
) -> None:
    backend = open_backend({"endpointUrl": tokens.url})

    payload = backend.fetch(ref())

    issued = tokens.issued[-1]
    assert dict(payload.data) == {
        "auths": {HOST: {"username": "AWS", "password": issued.password, "auth": issued.token}}
    }
    entry = payload.data["auths"][HOST]
    assert base64.b64decode(entry["auth"]).decode() == f"AWS:{entry['password']}"
    assert entry["password"].startswith(f"{ACCOUNT}-auth-token-")  # moto's, made unique
    assert issued.password not in repr(payload) and issued.token not in repr(payload)


def test_token_payload_is_what_the_dockerconfig_renderer_accepts(
    open_backend: Any, tokens: ecrtokens.EcrTokenProxy
) -> None:
    payload = open_backend({"endpointUrl": tokens.url}).fetch(ref())

    auths = dockerconfig.parse_payload(payload.data, fields=dockerconfig.FieldNames(),
                                       registry=None)
    rendered = json.loads(dockerconfig.render(auths))

    assert list(rendered["auths"]) == [HOST]
    assert rendered["auths"][HOST]["auth"] == tokens.issued[-1].token


def test_expiry_is_read_from_expires_at(aws: Any, open_backend: Any) -> None:
    with ecrtokens.EcrTokenProxy(aws.endpoint, lifetime=12 * 3600, clock=lambda: FIXED_NOW) as p:
        payload = open_backend({"endpointUrl": p.url}).fetch(ref())

    assert payload.expires_at == FIXED_NOW + 12 * 3600


def test_expiry_of_motos_unchanged_answer_is_its_fixed_2015_date(
    aws: Any, open_backend: Any
) -> None:
    payload = open_backend({"endpointUrl": aws.endpoint}).fetch(ref())

    assert payload.expires_at == 1_420_070_400.0  # 2015-01-01T00:00:00Z: already expired
    assert list(payload.data["auths"]) == [HOST]


def test_each_fetch_is_one_call_and_a_new_token(
    open_backend: Any, tokens: ecrtokens.EcrTokenProxy
) -> None:
    backend = open_backend({"endpointUrl": tokens.url})

    first, second = backend.fetch(ref()), backend.fetch(ref())

    assert first.data != second.data
    assert len(tokens.token_calls()) == 2
    assert len(tokens.seen) == 2  # nothing else: no describe, no retry


def test_default_registry_sends_no_registry_ids_and_a_set_one_is_passed_through(
    open_backend: Any, tokens: ecrtokens.EcrTokenProxy
) -> None:
    backend = open_backend({"endpointUrl": tokens.url})

    own = backend.fetch(ref())
    other = backend.fetch(ref(registryId=OTHER))

    assert [c.params for c in tokens.token_calls()] == [{}, {"registryIds": [OTHER]}]
    assert list(own.data["auths"]) == [HOST]
    assert list(other.data["auths"]) == [f"{OTHER}.dkr.ecr.us-east-1.amazonaws.com"]
    assert other.data["auths"][f"{OTHER}.dkr.ecr.us-east-1.amazonaws.com"][
        "password"].startswith(f"{OTHER}-auth-token-")


# -- cross-account role ----------------------------------------------------------------------


def test_assumed_role_signs_the_token_call_with_the_roles_credentials(
    aws: Any, aws_env: Any, open_backend: Any, tokens: ecrtokens.EcrTokenProxy, fault_proxy: Any
) -> None:
    sts = fault_proxy(aws.endpoint)
    aws_env.setenv("AWS_ENDPOINT_URL_STS", sts.url)  # STS the standard way, not endpointUrl
    backend = open_backend(
        {"endpointUrl": tokens.url, "assumeRoleArn": ROLE_ARN, "externalId": "pss-ext"})

    payloads = [backend.fetch(ref()) for _ in range(2)]

    signers = {c.access_key_id for c in tokens.token_calls()}
    assert len(signers) == 1
    signer = signers.pop()
    assert signer is not None and signer != aws.access_key_id
    assert signer.startswith("ASIA")  # temporary credentials from AssumeRole
    assert sts.count(method="POST") == 1  # assumed once, reused for the second call
    # moto attributes the call to the role's account: its registry is the caller's default
    assert [list(p.data["auths"]) for p in payloads] == [
        [f"{OTHER}.dkr.ecr.us-east-1.amazonaws.com"]] * 2


def test_check_assumes_the_role_without_asking_for_a_token(
    aws: Any, aws_env: Any, open_backend: Any, tokens: ecrtokens.EcrTokenProxy, fault_proxy: Any
) -> None:
    sts = fault_proxy(aws.endpoint)
    aws_env.setenv("AWS_ENDPOINT_URL_STS", sts.url)
    backend = open_backend({"endpointUrl": tokens.url, "assumeRoleArn": ROLE_ARN})

    backend.check()

    assert sts.count(method="POST") == 1
    assert tokens.seen == []


# -- errors ----------------------------------------------------------------------------------


# What real ECR answers; moto grants every caller a token for any registry ID (the model already
# refuses malformed ones), so these refusals are injected. The service's message text is chained
# as the cause (raise ... from) but never part of our message.
ECR_DENIED = {"__type": "AccessDeniedException",
              "message": "User is not authorized to perform: ecr:GetAuthorizationToken"}
ECR_INVALID = {"__type": "InvalidParameterException",
               "message": "Invalid parameter at 'registryIds'"}
JSON = {"Content-Type": "application/x-amz-json-1.1"}


@pytest.mark.parametrize(
    ("status", "answer", "error", "shown"),
    [
        (403, ECR_DENIED, base.AccessDenied, "access denied (GetAuthorizationToken: "
         "AccessDeniedException, HTTP 403)"),
        (400, ECR_INVALID, base.BackendError, "request failed (GetAuthorizationToken: "
         "InvalidParameterException, HTTP 400)"),
    ],
    ids=["permission-missing", "registry-id-refused"],
)
def test_refusals_are_mapped_to_our_errors_without_the_service_text(
    open_backend: Any, tokens: ecrtokens.EcrTokenProxy, fault_proxy: Any, status: int,
    answer: dict[str, str], error: type[base.BackendError], shown: str,
) -> None:
    proxy = fault_proxy(tokens.url)
    proxy.fail(status, body=json.dumps(answer), headers=JSON)
    backend = open_backend({"endpointUrl": proxy.url})

    with pytest.raises(base.BackendError) as caught:
        backend.fetch(ref(registryId=OTHER))

    assert type(caught.value) is error
    assert not caught.value.retryable
    assert str(caught.value) == (
        f"aws-ecr backend 'ecr-test': token for registry {OTHER}: {shown}")
    assert_clean(caught.value, tokens)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_unavailable_after_one_attempt(
    open_backend: Any, tokens: ecrtokens.EcrTokenProxy, fault_proxy: Any, status: int
) -> None:
    proxy = fault_proxy(tokens.url)
    proxy.fail(status, times=1)
    backend = open_backend({"endpointUrl": proxy.url})

    with pytest.raises(base.Unavailable) as caught:
        backend.fetch(ref())
    recovered = backend.fetch(ref())

    assert caught.value.retryable
    assert f"HTTP {status}" in str(caught.value)
    assert proxy.count() == 2  # no hidden retry: the caller owns backoff
    assert list(recovered.data["auths"]) == [HOST]
    assert_clean(caught.value, tokens)


def test_endpoint_not_listening_is_unavailable(open_backend: Any) -> None:
    backend = open_backend({"endpointUrl": f"http://127.0.0.1:{procs.free_port()}"})

    with pytest.raises(base.Unavailable) as caught:
        backend.fetch(ref())

    assert "cannot reach the service" in str(caught.value)
    assert "caller's account" in str(caught.value)
    assert_clean(caught.value)


def test_no_aws_credentials_is_access_denied(
    open_backend: Any, aws_env: Any, tokens: ecrtokens.EcrTokenProxy
) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    backend = open_backend({"endpointUrl": tokens.url})

    with pytest.raises(base.AccessDenied) as caught:
        backend.fetch(ref())

    assert "no usable AWS credentials" in str(caught.value)
    assert tokens.seen == []


def _token(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"authorizationToken": f"not base64 {SENTINEL}!"}, "authorizationToken is not base64"),
        ({"authorizationToken": _token(f"AWS{SENTINEL}")}, "does not decode to AWS:<password>"),
        ({"authorizationToken": _token(f"root:{SENTINEL}")}, "does not decode to AWS:<password>"),
        ({"authorizationToken": _token("AWS:")}, "does not decode to AWS:<password>"),
        ({"authorizationToken": base64.b64encode(b"AWS:\xff\xfe").decode()},
         "authorizationToken is not base64 text"),
        ({"authorizationToken": None}, "has no authorizationToken"),
        ({"proxyEndpoint": None}, "has no proxyEndpoint"),
        ({"proxyEndpoint": f"{SENTINEL}.dkr.ecr"}, "proxyEndpoint is not an http(s) URL"),
        ({"proxyEndpoint": "https://h.example:port"}, "proxyEndpoint is not an http(s) URL"),
        ({"expiresAt": None}, "has no expiresAt"),
    ],
    ids=["not-base64", "no-colon", "other-user", "empty-password", "not-utf8", "no-token",
         "no-endpoint", "endpoint-not-url", "endpoint-bad-port", "no-expiry"],
)
def test_unusable_token_answer_is_invalid_payload_naming_the_field(
    open_backend: Any, tokens: ecrtokens.EcrTokenProxy, edit: dict[str, Any], message: str
) -> None:
    def apply(entry: dict[str, Any]) -> None:
        for key, value in edit.items():
            if value is None:
                del entry[key]
            else:
                entry[key] = value

    tokens.edit = apply
    backend = open_backend({"endpointUrl": tokens.url})

    with pytest.raises(base.InvalidPayload) as caught:
        backend.fetch(ref())

    assert message in str(caught.value)
    assert_clean(caught.value, tokens)


def test_answer_without_exactly_one_authorization_entry_is_invalid_payload(
    open_backend: Any, tokens: ecrtokens.EcrTokenProxy, fault_proxy: Any
) -> None:
    proxy = fault_proxy(tokens.url)
    proxy.fail(200, body=json.dumps({"authorizationData": []}), headers=JSON)
    backend = open_backend({"endpointUrl": proxy.url})

    with pytest.raises(base.InvalidPayload) as caught:
        backend.fetch(ref())

    assert "expected one authorizationData entry, got 0" in str(caught.value)


def test_no_token_or_password_reaches_logs_or_reprs(
    open_backend: Any, aws: Any, aws_env: Any, tokens: ecrtokens.EcrTokenProxy,
    fault_proxy: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    aws_env.setenv("AWS_ENDPOINT_URL_STS", fault_proxy(aws.endpoint).url)
    backend = open_backend({"endpointUrl": tokens.url, "assumeRoleArn": ROLE_ARN})
    payloads = [backend.fetch(ref()), backend.fetch(ref(registryId=OTHER))]

    ours = [r for r in caplog.records if r.name.startswith(("backends", "syncer"))]
    texts = [repr(p) for p in payloads] + [repr(backend)] + [
        r.getMessage() + repr(r.__dict__) for r in ours]
    assert ours  # the role assumption was logged, so the check below looked at something
    assert len(tokens.secrets()) == 4
    for text in texts:
        for value in [SENTINEL, *tokens.secrets()]:
            assert value not in text
