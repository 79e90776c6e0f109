"""Payload detection, registry normalization, merging and rendering of ``.dockerconfigjson``."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncer.core import dockerconfig
from tests.unit.examples import examples

SENTINEL = "pw-SENTINEL-7f3a"
DEFAULT = dockerconfig.FieldNames()
HUB = "https://index.docker.io/v1/"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def parse(
    data: dict[str, Any],
    *,
    fields: dockerconfig.FieldNames = DEFAULT,
    registry: str | None = None,
) -> dict[str, dict[str, str]]:
    auths = dockerconfig.parse_payload(data, fields=fields, registry=registry)
    return {key: dict(entry) for key, entry in auths.items()}


# --- basic credentials ---------------------------------------------------------------------------


def test_basic_credentials_with_registry_from_the_config() -> None:
    got = parse({"username": "bot", "password": SENTINEL}, registry="ghcr.io")
    assert got == {
        "ghcr.io": {"username": "bot", "password": SENTINEL, "auth": b64(f"bot:{SENTINEL}")}
    }


@pytest.mark.parametrize("key", ["registry", "server"])
def test_basic_credentials_with_registry_from_the_payload(key: str) -> None:
    got = parse({"username": "bot", "password": "pw", key: "https://Quay.io/"})
    assert list(got) == ["quay.io"]


def test_registry_in_the_config_wins_over_the_payload() -> None:
    got = parse({"username": "u", "password": "p", "registry": "quay.io"}, registry="docker.io")
    assert list(got) == [HUB]


def test_registry_field_is_preferred_over_server() -> None:
    got = parse({"username": "u", "password": "p", "registry": "a.io", "server": "b.io"})
    assert list(got) == ["a.io"]


def test_email_is_kept_when_present_and_dropped_when_empty() -> None:
    got = parse({"username": "u", "password": "p", "email": "ops@example.com"}, registry="a.io")
    assert got["a.io"]["email"] == "ops@example.com"
    got = parse({"username": "u", "password": "p", "email": " "}, registry="a.io")
    assert "email" not in got["a.io"]


def test_field_renames_pick_other_payload_keys() -> None:
    fields = dockerconfig.FieldNames(username="user", password="token", email="mail")
    got = parse(
        {"user": "robot$ci", "token": SENTINEL, "mail": "m@x.io", "password": "ignored"},
        fields=fields,
        registry="registry.example.com:5000",
    )
    assert got == {
        "registry.example.com:5000": {
            "username": "robot$ci",
            "password": SENTINEL,
            "email": "m@x.io",
            "auth": b64(f"robot$ci:{SENTINEL}"),
        }
    }


# --- Docker config payloads ----------------------------------------------------------------------


def _docker_config() -> dict[str, Any]:
    return {
        "auths": {
            "https://index.docker.io/v1/": {"auth": b64("hub:" + SENTINEL)},
            "GHCR.io/": {"username": "gh", "password": SENTINEL},
            "quay.io": {"auth": b64("q:p"), "email": "q@x.io", "identitytoken": "tok"},
        },
        "credsStore": "ignored",
    }


def _expected() -> dict[str, dict[str, str]]:
    return {
        HUB: {"auth": b64("hub:" + SENTINEL)},
        "ghcr.io": {"username": "gh", "password": SENTINEL, "auth": b64("gh:" + SENTINEL)},
        "quay.io": {"auth": b64("q:p"), "email": "q@x.io", "identitytoken": "tok"},
    }


def test_dockerconfigjson_string_is_parsed_and_keys_normalized() -> None:
    got = parse({".dockerconfigjson": json.dumps(_docker_config())}, registry="ignored.io")
    assert got == _expected()


def test_dockerconfigjson_already_an_object() -> None:
    assert parse({".dockerconfigjson": _docker_config()}) == _expected()


def test_auths_at_the_top_level() -> None:
    assert parse(_docker_config()) == _expected()


def test_docker_config_wins_over_basic_fields() -> None:
    data = {**_docker_config(), "username": "u", "password": "p", "registry": "x.io"}
    assert parse(data) == _expected()


@pytest.mark.parametrize("field", ["identitytoken", "registrytoken"])
def test_an_entry_holding_only_a_token_the_kubelet_ignores_is_refused(field: str) -> None:
    # The kubelet's DockerConfigEntry reads username, password, email and auth only.
    with pytest.raises(dockerconfig.PayloadError) as caught:
        parse({"auths": {"a.io": {field: SENTINEL, "email": "x@y.z"}}})
    assert str(caught.value) == (
        "'auths' entry 'a.io': the kubelet does not use identitytoken/registrytoken; store "
        "username and password or auth"
    )


def test_a_token_beside_usable_credentials_is_kept() -> None:
    got = parse({"auths": {"a.io": {"auth": b64("u:p"), "identitytoken": "t"}}})
    assert got == {"a.io": {"auth": b64("u:p"), "identitytoken": "t"}}


def test_unpadded_auth_is_accepted_as_the_kubelet_accepts_it() -> None:
    # keyring config.go decodes `auth` with RawStdEncoding when it does not end in "=".
    unpadded = b64("user:pw").rstrip("=")
    assert unpadded != b64("user:pw")
    assert parse({"auths": {"a.io": {"auth": unpadded}}}) == {"a.io": {"auth": unpadded}}


# --- registry normalization ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_registry", "key"),
    [
        ("docker.io", HUB),
        ("index.docker.io", HUB),
        ("registry-1.docker.io", HUB),
        ("https://index.docker.io/v1/", HUB),
        ("https://index.docker.io/v1", HUB),
        ("http://docker.io/", HUB),
        ("https://registry-1.docker.io/v2/", HUB),
        ("  Docker.IO  ", HUB),
        ("ghcr.io", "ghcr.io"),
        ("https://ghcr.io/", "ghcr.io"),
        ("GHCR.IO", "ghcr.io"),
        ("registry.example.com:5000", "registry.example.com:5000"),
        ("http://registry.example.com:5000/", "registry.example.com:5000"),
        ("https://Registry.Example.com/Team/Images//", "registry.example.com/Team/Images"),
        ("localhost:5000", "localhost:5000"),
        ("10.0.0.1:5000/v2/", "10.0.0.1:5000"),
        ("[::1]:5000", "[::1]:5000"),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        ),
    ],
)
def test_registry_keys_are_normalized(given_registry: str, key: str) -> None:
    assert dockerconfig.normalize_registry(given_registry) == key
    assert dockerconfig.normalize_registry(key) == key  # idempotent


@pytest.mark.parametrize(
    ("given_registry", "message"),
    [
        ("", "registry is empty"),
        ("   ", "registry is empty"),
        ("https://", "registry is not a valid [https://]host[:port][/path]"),
        (f"bad host {SENTINEL}", "registry is not a valid [https://]host[:port][/path]"),
        ("host:port", "registry is not a valid [https://]host[:port][/path]"),
        ("ftp://a.io", "registry is not a valid [https://]host[:port][/path]"),
        ("*", "registry is not a valid [https://]host[:port][/path]"),
        ("*.*:5000", "registry is not a valid [https://]host[:port][/path]"),
        ("a.io:5000/*", "registry is not a valid [https://]host[:port][/path]"),
        ("a.io:*", "registry is not a valid [https://]host[:port][/path]"),
        ("a.io/x//y", "registry is not a valid [https://]host[:port][/path]"),
    ],
)
def test_invalid_registries_are_refused(given_registry: str, message: str) -> None:
    with pytest.raises(dockerconfig.PayloadError) as caught:
        dockerconfig.normalize_registry(given_registry)
    assert str(caught.value) == message


# --- errors: name the field, never the value -----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fields", "registry", "message"),
    [
        ({"username": "u"}, DEFAULT, "a.io", "field 'password' is missing"),
        ({"password": SENTINEL}, DEFAULT, "a.io", "field 'username' is missing"),
        (
            {"user": "u", "pass": SENTINEL},
            DEFAULT,
            "a.io",
            "no credentials found: expected '.dockerconfigjson', 'auths', or fields 'username' "
            "and 'password'",
        ),
        (
            {"username": "u", "password": SENTINEL},
            dockerconfig.FieldNames(password="token"),
            "a.io",
            "field 'token' is missing",
        ),
        ({"username": " ", "password": SENTINEL}, DEFAULT, "a.io", "field 'username' is empty"),
        ({"username": "u", "password": ""}, DEFAULT, "a.io", "field 'password' is empty"),
        (
            {"username": "u", "password": 12345678},
            DEFAULT,
            "a.io",
            "field 'password' must be a string",
        ),
        (
            {"username": ["x"], "password": SENTINEL},
            DEFAULT,
            "a.io",
            "field 'username' must be a string",
        ),
        (
            {"username": "a:b", "password": SENTINEL},
            DEFAULT,
            "a.io",
            "field 'username' must not contain ':'",
        ),
        (
            {"username": "u", "password": SENTINEL, "email": 5},
            DEFAULT,
            "a.io",
            "field 'email' must be a string",
        ),
        (
            {"username": "u", "password": SENTINEL},
            DEFAULT,
            None,
            "no registry: set 'registry' in the config or 'registry'/'server' in the secret",
        ),
        (
            {"username": "u", "password": SENTINEL, "server": 7},
            DEFAULT,
            None,
            "field 'server' must be a string",
        ),
        (
            {"username": "u", "password": "p", "registry": f"{SENTINEL} x"},
            DEFAULT,
            None,
            "field 'registry': registry is not a valid [https://]host[:port][/path]",
        ),
        (
            {".dockerconfigjson": '{"auths": ' + SENTINEL},
            DEFAULT,
            None,
            "'.dockerconfigjson' is not valid JSON",
        ),
        (
            {".dockerconfigjson": f'"{SENTINEL}"'},
            DEFAULT,
            None,
            "'.dockerconfigjson' must be a JSON object",
        ),
        ({".dockerconfigjson": 17}, DEFAULT, None, "'.dockerconfigjson' must be a JSON object"),
        (
            {".dockerconfigjson": {"x": SENTINEL}},
            DEFAULT,
            None,
            "'.dockerconfigjson' has no 'auths' object",
        ),
        ({"auths": SENTINEL}, DEFAULT, None, "'auths' must be an object"),
        ({"auths": [SENTINEL]}, DEFAULT, None, "'auths' must be an object"),
        ({"auths": {}}, DEFAULT, None, "'auths' is empty"),
        ({"auths": {"a.io": SENTINEL}}, DEFAULT, None, "'auths' entry 'a.io' must be an object"),
        (
            {"auths": {"a.io": {"auth": b64("u:p"), "password": 1234}}},
            DEFAULT,
            None,
            "'auths' entry 'a.io': field 'password' must be a string",
        ),
        (
            {"auths": {"a.io": {"auth": " "}}},
            DEFAULT,
            None,
            "'auths' entry 'a.io': field 'auth' is empty",
        ),
        (
            {"auths": {"a.io": {"auth": SENTINEL}}},
            DEFAULT,
            None,
            "'auths' entry 'a.io': field 'auth' is not base64 of 'username:password'",
        ),
        (
            {"auths": {"a.io": {"auth": b64(SENTINEL)}}},
            DEFAULT,
            None,
            "'auths' entry 'a.io': field 'auth' is not base64 of 'username:password'",
        ),
        (
            {"auths": {"a.io": {"username": "u", "password": ""}}},
            DEFAULT,
            None,
            "'auths' entry 'a.io': field 'password' is empty",
        ),
        (
            {"auths": {"a.io": {"email": "x@y.z"}}},
            DEFAULT,
            None,
            "'auths' entry 'a.io' has no credentials (needs 'auth', or 'username' and 'password')",
        ),
        (
            {"auths": {f"{SENTINEL} x": {"auth": b64("u:p")}}},
            DEFAULT,
            None,
            "'auths' has a key that is not a registry ([https://]host[:port][/path])",
        ),
        (
            {"auths": {"docker.io": {"auth": b64("u:p")}, HUB: {"auth": b64("v:q")}}},
            DEFAULT,
            None,
            f"'auths' entry '{HUB}': registry appears twice after normalization",
        ),
    ],
)
def test_payload_errors_name_the_field_never_the_value(
    data: dict[str, Any], fields: dockerconfig.FieldNames, registry: str | None, message: str
) -> None:
    with pytest.raises(dockerconfig.PayloadError) as caught:
        dockerconfig.parse_payload(data, fields=fields, registry=registry)
    assert str(caught.value) == message
    assert "SENTINEL" not in repr(caught.value)


@pytest.mark.parametrize("name", sorted(dockerconfig.KNOWN_FIELDS))
def test_a_known_field_of_the_wrong_type_is_named(name: str) -> None:
    with pytest.raises(dockerconfig.PayloadError) as caught:
        parse({"auths": {"a.io": {"auth": b64("u:p"), name: 5}}})
    assert str(caught.value) == f"'auths' entry 'a.io': field {name!r} must be a string"


@pytest.mark.parametrize("name", [SENTINEL, "hunter2-pasted-here", "Password", "token"])
def test_an_unknown_field_is_never_named(name: str) -> None:
    # An unknown key may be a value pasted in the wrong place: its name is not shown.
    with pytest.raises(dockerconfig.PayloadError) as caught:
        parse({"auths": {"a.io": {"auth": b64("u:p"), name: [1]}}})
    assert str(caught.value) == (
        "'auths' entry 'a.io': a field that is not a known one must be a string"
    )
    assert name not in str(caught.value)


@pytest.mark.parametrize(
    ("registry", "key"),
    [
        ("https://harbor.example.com/v2/", "harbor.example.com"),
        ("harbor.example.com/v2", "harbor.example.com"),
        ("http://harbor.example.com:8443/v1/", "harbor.example.com:8443"),
        ("harbor.example.com/v2/foo", "harbor.example.com/v2/foo"),
        ("harbor.example.com/v2/foo/", "harbor.example.com/v2/foo"),
        ("harbor.example.com/v20", "harbor.example.com/v20"),
        ("harbor.example.com/team/v2", "harbor.example.com/team/v2"),
        ("registry-1.docker.io:443", HUB),
        ("https://registry-1.docker.io:443/v2/", HUB),
        ("docker.io:443", HUB),
        ("index.docker.io:443", HUB),
        ("https://index.docker.io:443/v1/", HUB),
        ("docker.io:5000", "docker.io:5000"),
        ("*.example.com", "*.example.com"),
        ("*.*.example.com", "*.*.example.com"),
        ("https://*.Example.com:5000/", "*.example.com:5000"),
        ("app*.k8s.io", "app*.k8s.io"),
        ("k8s.*", "k8s.*"),
        ("*.azurecr.io/team", "*.azurecr.io/team"),
    ],
)
def test_registry_keys_match_the_kubelet(registry: str, key: str) -> None:
    """What the kubelet does with a key (pkg/credentialprovider/keyring.go, BasicDockerKeyring.Add
    and URLsMatch, checked against kubernetes/kubernetes master):

    - it prefixes "https://" unless the key starts with http:// or https://, then url.Parse;
    - a path starting with "/v1/" or "/v2/" loses those 3 characters, and a path of "/" or ""
      leaves the host alone as the key -- so "https://harbor.example.com/v2/" is the host, while
      "harbor.example.com/v2" (no slash: what we produced before) would be the path "/v2" and
      match only images under harbor.example.com/v2/...; we drop a bare /v1 or /v2 and keep any
      longer path as written (the kubelet reads "/v2/foo" as "/foo" either way);
    - the host is split at "." and each label is matched with filepath.Match, the port must be
      equal and the path a prefix: "*.example.com" and "*.*.example.com" are globs of one label
      each; globs are not matched in the port or the path, so we refuse them there;
    - Docker Hub credentials are looked up under "index.docker.io" (our
      "https://index.docker.io/v1/" parses to exactly that), for images without a registry or on
      docker.io / index.docker.io; an explicit ":443" would have to appear in the image name, so
      every Docker Hub spelling with or without :443 becomes the canonical key.
    """
    assert dockerconfig.normalize_registry(registry) == key
    assert dockerconfig.normalize_registry(key) == key


def test_wildcard_keys_are_accepted_in_payloads() -> None:
    got = parse({"auths": {"https://*.example.com/v2/": {"auth": b64("u:p")}}})
    assert list(got) == ["*.example.com"]


def test_invalid_json_error_does_not_carry_the_document() -> None:
    with pytest.raises(dockerconfig.PayloadError) as caught:
        dockerconfig.parse_payload(
            {".dockerconfigjson": "{" + SENTINEL}, fields=DEFAULT, registry=None
        )
    # json's own exception holds the whole document in `.doc`: it must not ride along as a cause.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- AWS documents -------------------------------------------------------------------------------


def test_json_documents_from_strings_and_bytes() -> None:
    doc = {"username": "u", "password": SENTINEL}
    assert dockerconfig.parse_json_document(json.dumps(doc)) == doc
    assert dockerconfig.parse_json_document(json.dumps(doc).encode()) == doc


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{" + SENTINEL, "secret is not valid JSON"),
        (b"\xff\xfe" + SENTINEL.encode(), "not valid UTF-8"),
        (json.dumps([SENTINEL]), "not a JSON object"),
        (json.dumps(SENTINEL), "not a JSON object"),
        ("", "secret is not valid JSON"),
    ],
)
def test_invalid_json_documents(text: str | bytes, message: str) -> None:
    with pytest.raises(dockerconfig.PayloadError) as caught:
        dockerconfig.parse_json_document(text)
    assert str(caught.value) == message


# --- merging and rendering -----------------------------------------------------------------------


def test_merge_keeps_mapping_order_and_reports_shadowed_registries() -> None:
    hub = dockerconfig.parse_payload(
        {"username": "a", "password": "1"}, fields=DEFAULT, registry=HUB
    )
    ghcr = dockerconfig.parse_payload(
        {"auths": {"ghcr.io": {"auth": b64("b:2")}, "docker.io": {"auth": b64("b:3")}}},
        fields=DEFAULT,
        registry=None,
    )
    auths, shadowed = dockerconfig.merge([("dockerhub", hub), ("ghcr", ghcr)])
    assert list(auths) == [HUB, "ghcr.io"]
    assert auths[HUB]["auth"] == b64("a:1")  # the first credential keeps the registry
    assert shadowed == (("ghcr", HUB),)

    auths, shadowed = dockerconfig.merge([("ghcr", ghcr), ("dockerhub", hub)])
    assert auths[HUB]["auth"] == b64("b:3")
    assert shadowed == (("dockerhub", HUB),)


def test_merge_of_nothing_is_empty() -> None:
    assert dockerconfig.merge([]) == ({}, ())


def test_render_is_sorted_compact_utf8_json() -> None:
    auths = parse({"username": "ü", "password": "p", "email": "e@x.io"}, registry="b.io")
    auths["a.io"] = {"auth": b64("x:y")}
    data = dockerconfig.render(auths)
    assert (
        data
        == (
            '{"auths":{"a.io":{"auth":"' + b64("x:y") + '"},"b.io":{"auth":"' + b64("ü:p") + '",'
            '"email":"e@x.io","password":"p","username":"ü"}}}'
        ).encode()
    )
    assert json.loads(data) == {"auths": auths}


def test_identical_input_renders_byte_identical_output() -> None:
    one = dockerconfig.parse_payload(_docker_config(), fields=DEFAULT, registry=None)
    reordered = {"auths": dict(reversed(list(_docker_config()["auths"].items())))}
    two = dockerconfig.parse_payload(reordered, fields=DEFAULT, registry=None)
    assert dockerconfig.render(one) == dockerconfig.render(two)
    assert dockerconfig.render(dockerconfig.merge([("a", one)])[0]) == dockerconfig.render(one)


def test_objects_holding_credentials_redact_themselves() -> None:
    auths = dockerconfig.parse_payload(
        {"username": "u", "password": SENTINEL}, fields=DEFAULT, registry="a.io"
    )
    merged, _ = dockerconfig.merge([("c", auths)])
    for obj in (auths, auths["a.io"], merged, merged["a.io"]):
        assert SENTINEL not in repr(obj)
        assert SENTINEL not in str(obj)
        assert SENTINEL not in f"{obj!r} {obj}"
    assert "a.io" in repr(auths)  # registry names are not secret and help debugging
    assert auths == {"a.io": {"username": "u", "password": SENTINEL, "auth": b64("u:" + SENTINEL)}}
    assert hash(auths) == hash(
        dockerconfig.parse_payload(
            {"username": "u", "password": SENTINEL}, fields=DEFAULT, registry="a.io"
        )
    )


# --- fuzzing -------------------------------------------------------------------------------------

_secret = st.sampled_from(
    [SENTINEL, f"{SENTINEL}:x", f"https://{SENTINEL}", f"{SENTINEL} x", "{" + SENTINEL]
)
_scalar = st.one_of(
    _secret, st.sampled_from(["", " ", "u", "a.io"]), st.integers(), st.none(), st.booleans()
)
_registry_keys = st.sampled_from(["a.io", "docker.io", HUB, "bad host", "", "q.io:5000/x"])
_entry = st.one_of(
    _scalar,
    st.dictionaries(
        st.sampled_from(["auth", "username", "password", "email", "identitytoken", "x"]),
        st.one_of(_scalar, st.just(b64("u:" + SENTINEL)), st.just(b64(SENTINEL))),
        max_size=4,
    ),
)
_auths = st.one_of(_scalar, st.dictionaries(_registry_keys, _entry, max_size=3))
_payload = st.dictionaries(
    st.sampled_from(["username", "password", "email", "registry", "server", "user", "token", "x"]),
    _scalar,
    max_size=6,
).flatmap(
    lambda base: st.one_of(
        st.just(base),
        _auths.map(lambda a: {**base, "auths": a}),
        _auths.map(lambda a: {**base, ".dockerconfigjson": {"auths": a}}),
        _auths.map(lambda a: {**base, ".dockerconfigjson": json.dumps({"auths": a})}),
        _scalar.map(lambda s: {**base, ".dockerconfigjson": s}),
    )
)
_fields = st.sampled_from([DEFAULT, dockerconfig.FieldNames(username="user", password="token")])


@settings(max_examples=examples(200), deadline=None)
@given(data=_payload, fields=_fields, registry=st.one_of(st.none(), _registry_keys))
def test_fuzzed_payloads_raise_only_clean_payload_errors(
    data: dict[str, Any], fields: dockerconfig.FieldNames, registry: str | None
) -> None:
    try:
        auths = dockerconfig.parse_payload(data, fields=fields, registry=registry)
    except dockerconfig.PayloadError as exc:
        assert "SENTINEL" not in str(exc)
        assert exc.__cause__ is None
    else:
        assert auths
        assert "SENTINEL" not in repr(auths)
        rendered = dockerconfig.render(auths)
        assert json.loads(rendered)["auths"].keys() == auths.keys()
