"""Fuzzing of the paths where untrusted content becomes an error message (docs/operations.md).

tests/unit/test_config.py fuzzes the config loader and test_dockerconfig.py the payload parser on
its own. These cover what those do not: the whole read path of one credential (backend answer →
payload → auths, as `run` and `sync` do it), the AWS secret-text decoding, and the translation of
apiserver error bodies for writes that carry credential data. In each: only our own error type
escapes, its message names where the problem is, and no injected value appears in it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from backends import aws, base
from syncer import config
from syncer.core import dockerconfig
from syncer.credentials import fetch as credentials
from syncer.kube import errors as kube
from syncer.kube.client.translate import translate
from tests.unit.examples import examples

SENTINEL = "SENTINEL"
_secretish = st.sampled_from([SENTINEL, f"pw-{SENTINEL}-1", f"{SENTINEL}:x", f"{SENTINEL}\n",
                              base64.b64encode(f"u:{SENTINEL}".encode()).decode()])
_scalar = st.one_of(_secretish, st.integers(), st.booleans(), st.none(), st.just(""),
                    st.floats(allow_nan=False))
_keys = st.sampled_from(["username", "password", "email", "registry", "server", "auths",
                         ".dockerconfigjson", "auth", "user", "pass", "x"])
_json = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys | _secretish, inner, max_size=4)),
    max_leaves=8)


@st.composite
def _payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly plausible shapes (basic fields, auths, a .dockerconfigjson string), then broken."""
    shape = draw(st.sampled_from(["basic", "auths", "string", "any"]))
    if shape == "basic":
        return draw(st.dictionaries(_keys, _scalar, max_size=5))
    if shape == "auths":
        entry = st.dictionaries(_keys, _scalar, max_size=4)
        return {"auths": draw(st.dictionaries(st.sampled_from(
            ["ghcr.io", "docker.io", f"{SENTINEL}.io", "", "a b"]), entry | _scalar, max_size=3))}
    if shape == "string":
        inner = draw(_json)
        text = json.dumps(inner) if draw(st.booleans()) else json.dumps(inner)[:-1] + SENTINEL
        return {".dockerconfigjson": text}
    return draw(st.dictionaries(_keys | _secretish, _json, max_size=4))


class _Ref(pydantic.BaseModel):
    path: str = "p"


class _Backend:
    """Answers with the fuzzed payload or a fuzzed backend error (a hand-written fake)."""

    def __init__(self, payload: dict[str, Any] | None, error: base.BackendError | None) -> None:
        self.payload, self.error = payload, error

    def fetch(self, ref: base.CredentialRef) -> base.Payload:
        if self.error is not None:
            raise self.error
        return base.Payload(data=self.payload or {})

    def check(self) -> None:
        return None

    def close(self) -> None:
        return None


_ERRORS = st.sampled_from([None, None, None, base.NotFound("read p: not found (HTTP 404)"),
                           base.Unavailable("read p: cannot connect"),
                           base.AccessDenied("read p: access denied (HTTP 403)"),
                           base.InvalidPayload("read p: SecretString is not valid JSON")])
_FIELDS = st.sampled_from([dockerconfig.FieldNames(),
                           dockerconfig.FieldNames(username="user", password="pass")])


@settings(max_examples=examples(300), deadline=None)
@given(payload=_payloads(), error=_ERRORS, fields=_FIELDS,
       registry=st.sampled_from([None, "ghcr.io", "https://index.docker.io/v1/"]))
def test_reading_a_credential_raises_only_credential_errors_naming_the_credential_and_field(
    payload: dict[str, Any], error: base.BackendError | None, fields: dockerconfig.FieldNames,
    registry: str | None,
) -> None:
    spec = config.CredentialSpec(name="hub", backend="b", registry=registry, fields=fields,
                                 refresh_interval=60.0,
                                 ref=base.CredentialRef(name="hub", options=_Ref()))
    try:
        auths = credentials.read(spec, _Backend(payload, error))
    except credentials.CredentialError as exc:
        message = str(exc)
        assert message.startswith("credential 'hub': "), message
        detail = message.removeprefix("credential 'hub': ")
        # where the problem is: the backend path, or the payload field / document part
        assert detail.startswith("read p:") or any(
            part in detail for part in ("field", "'auths'", "'.dockerconfigjson'", "registry",
                                        "secret is not an object", ".dockerconfigjson", "auths[")
        ), detail
        assert SENTINEL not in message
        assert SENTINEL not in repr(exc.__cause__ or "")
    else:
        assert error is None
        assert SENTINEL not in repr(auths)
        json.loads(dockerconfig.render(auths))


@settings(max_examples=examples(300), deadline=None)
@given(text=st.one_of(_json.map(json.dumps), st.lists(st.sampled_from(
    [*'{}[]":,ab\\ ', SENTINEL, "\u00e9", "\x00", "\ud800"]), max_size=20).map("".join)),
    binary=st.booleans())
def test_aws_secret_text_decoding_raises_only_invalid_payload_naming_the_field(
    text: str, binary: bool
) -> None:
    resp: dict[str, Any] = ({"SecretBinary": text.encode("utf-8", "surrogatepass")} if binary
                            else {"SecretString": text})
    try:
        data = aws._parse(resp, "aws backend 'a': read 's' (AWSCURRENT)")
    except base.InvalidPayload as exc:
        message = str(exc)
        assert message.startswith("aws backend 'a': read 's' (AWSCURRENT): Secret"), message
        assert SENTINEL not in message
        # no json error (which quotes the text) chained or shown as context
        assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    else:
        assert isinstance(data, dict)


@settings(max_examples=examples(300), deadline=None)
@given(status=st.sampled_from([400, 403, 404, 409, 410, 422, 429, 500, 503]),
       body=st.one_of(_json.map(json.dumps), st.fixed_dictionaries({
           "kind": st.just("Status"), "reason": st.sampled_from(["Invalid", "Conflict", ""]),
           "message": _secretish.map(lambda s: f"Secret \"regcred\" is invalid: data: {s}"),
           "details": st.fixed_dictionaries({"causes": st.lists(st.fixed_dictionaries({
               "field": st.sampled_from(["data[.dockerconfigjson]", "data", "metadata.name"]),
               "message": _secretish}), max_size=2)}),
       }).map(json.dumps)))
def test_apiserver_errors_of_secret_writes_never_quote_the_rejected_data(
    status: int, body: str
) -> None:
    exc = ApiException(status=status, reason="x")
    exc.body = body
    err = translate(exc, "PATCH secrets ns/regcred", quote_message=False)
    assert isinstance(err, kube.KubeError)
    assert str(err).startswith(f"PATCH secrets ns/regcred: {status}"), str(err)
    assert SENTINEL not in str(err)
