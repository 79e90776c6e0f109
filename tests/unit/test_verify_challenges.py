"""The pure parts of the registry login check: where a key is checked, how challenges are read.
The login flow itself is tested against a real registry in tests/integration/test_verify.py."""

from __future__ import annotations

import pytest

from syncer.credentials import challenges, verify

OPTIONS = verify.Options()


@pytest.mark.parametrize("key", [
    "https://index.docker.io/v1/", "docker.io", "index.docker.io", "registry-1.docker.io:443",
])
def test_docker_hub_is_checked_at_registry_1(key):
    assert verify.api_base(key, options=OPTIONS) == "https://registry-1.docker.io"


@pytest.mark.parametrize(("key", "expected"), [
    ("harbor.example.com", "https://harbor.example.com"),
    ("Harbor.Example.com:8443/v2/", "https://harbor.example.com:8443"),
    ("ghcr.io/my-org/images", "https://ghcr.io"),
    ("https://quay.io", "https://quay.io"),
    ("[::1]:5000", "https://[::1]:5000"),
])
def test_other_keys_are_checked_at_their_host_and_port(key, expected):
    assert verify.api_base(key, options=OPTIONS) == expected


def test_plain_http_option_switches_the_scheme_only():
    options = verify.Options(plain_http=True)

    assert verify.api_base("127.0.0.1:5000/x", options=options) == "http://127.0.0.1:5000"
    # an http:// in the key is not a licence to talk plain http
    assert verify.api_base("http://example.com", options=OPTIONS) == "https://example.com"


@pytest.mark.parametrize("key", ["*.example.com", "*.*.example.com", "", "user@host", "h:99999"])
def test_keys_without_a_single_host_cannot_be_checked(key):
    with pytest.raises(ValueError, match=r"cannot be checked|no valid host"):
        verify.api_base(key, options=OPTIONS)

    outcome = verify.check(key, {"auth": "dTpw"}, options=OPTIONS)

    assert outcome.result == "unreachable"


def test_challenges_of_real_registries_are_read():
    header = ('Bearer realm="https://ghcr.io/token",service="ghcr.io",'
              'scope="repository:org/app:pull", Basic realm="a, quoted \\"realm\\""')

    found = challenges.parse_challenges(header)

    assert found == [
        challenges.Challenge("bearer", {"realm": "https://ghcr.io/token", "service": "ghcr.io",
                                    "scope": "repository:org/app:pull"}),
        challenges.Challenge("basic", {"realm": 'a, quoted "realm"'}),
    ]


@pytest.mark.parametrize(("header", "schemes"), [
    ("", []),
    ("Basic", ["basic"]),
    ('BASIC realm=registry', ["basic"]),
    ("Negotiate YII=, Basic realm=x", ["negotiate", "basic"]),
])
def test_challenge_schemes_are_case_insensitive_and_tolerant(header, schemes):
    assert [c.scheme for c in challenges.parse_challenges(header)] == schemes


@pytest.mark.parametrize("entry", [
    {"auth": "not base64!"}, {"auth": "bm8tY29sb24="}, {"username": "u"}, {},
])
def test_entries_without_a_usable_credential_are_rejected_without_network(entry):
    outcome = verify.check("127.0.0.1:9", entry, options=OPTIONS)

    assert outcome.result == "rejected"
    assert "'auth'" in outcome.detail


@pytest.mark.parametrize("auth", [
    "dTpw",            # base64 of "u:p", unpadded length already a multiple of 4
    "dXNlcjpwdw",      # base64 of "user:pw" without its padding
    "dXNlcjpwdw==\n",  # with a trailing newline, as `base64` prints it
    " dXNlcjpwdw== ",
])
def test_verify_reads_every_auth_form_the_payload_parser_accepts(auth):
    """A credential the payload parser publishes is presented, not refused without asking:
    nothing listens on port 9, so a presented credential ends `unreachable`, never `rejected`."""
    from syncer.core import dockerconfig

    assert dockerconfig.split_auth(auth) is not None
    outcome = verify.check("127.0.0.1:9", {"auth": auth}, options=OPTIONS, deadline=5)

    assert outcome.result == "unreachable", outcome
