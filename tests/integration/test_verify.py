"""The registry login check (syncer/credentials/verify.py) against a real registry: CNCF
distribution with htpasswd (Basic) over plain HTTP and over TLS, and in `auth: token` mode (Bearer)
with a token server; faults from the fault proxy in front of them; skopeo as the real client that
must agree.

Requests are counted by independent observers — the registry's own access log, the token
server's request log, the fault proxy — never by the code under test. Every Outcome, every log
record (with its extras) and skopeo's output is checked for the test's passwords.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from stack import procs, skopeo, wait

from syncer.credentials import verify
from tests.integration.conftest import SENTINEL, find_leaks

pytestmark = pytest.mark.integration

USER = "puller"
GOOD = f"pw-{SENTINEL}-good-4e1b"
BAD = f"pw-{SENTINEL}-bad-9c2d"
OTHER_HOST = "127.0.0.2"  # another host as far as a client can tell; still loopback
PLAIN = verify.Options(plain_http=True)


def entry(user: str, password: str) -> dict[str, str]:
    """An `auths` entry as the product renders it (and as `kubectl create secret` does)."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"username": user, "password": password, "auth": auth}


def dockerconfig(key: str, user: str, password: str) -> bytes:
    return json.dumps({"auths": {key: entry(user, password)}}, sort_keys=True).encode()


@pytest.fixture(autouse=True)
def _no_leak(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture,
             leak_values: list[str], leak_registry: Any) -> Iterator[None]:
    """The test's passwords (and their `auth` strings) never appear in any log record."""
    leak_values.extend([GOOD, BAD, entry(USER, GOOD)["auth"], entry(USER, BAD)["auth"]])
    caplog.set_level(logging.DEBUG)
    yield
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    leak_registry.text(f"{request.node.nodeid}: log records", text)
    assert not find_leaks(text, leak_values), text


@pytest.fixture
def login(request: pytest.FixtureRequest, leak_values: list[str],
          leak_registry: Any) -> Callable[..., verify.Outcome]:
    """`verify.check` with every Outcome checked and fed to the session-wide leak check."""

    def run(key: str, item: dict[str, str], **kwargs: Any) -> verify.Outcome:
        kwargs.setdefault("options", verify.Options())
        outcome = verify.check(key, item, **kwargs)
        leak_registry.text(f"{request.node.nodeid}: outcome", repr(outcome))
        assert not find_leaks(repr(outcome), leak_values), outcome
        return outcome

    return run


def registry_requests(registry: Any, expected: int) -> int:
    """The /v2/ requests in the registry's access log once `expected` arrived (or the count)."""
    try:
        wait.eventually(f"{expected} requests in the access log",
                        lambda: registry.count(path="^/v2/") >= expected, timeout=5)
    except AssertionError:
        pass
    return registry.count(path="^/v2/")


# --------------------------------------------------------------------------- good credentials


def test_good_credential_is_ok_with_basic_auth_over_plain_http(registry_factory, login):
    registry = registry_factory(users={USER: GOOD})

    outcome = login(registry.key, entry(USER, GOOD), options=PLAIN)

    assert outcome == verify.Outcome("ok", f"{registry.key} accepted the credential (Basic)")
    assert [(r.path, r.status) for r in registry.access_log()] == [("/v2/", 401), ("/v2/", 200)]


def test_good_credential_is_ok_over_tls_with_the_ca_cert(registry_factory, login):
    registry = registry_factory(users={USER: GOOD}, tls=True)

    outcome = login(registry.key, entry(USER, GOOD),
                    options=verify.Options(ca_cert=registry.ca_file))

    assert outcome.result == "ok", outcome


def test_good_credential_is_ok_through_the_bearer_token_realm(registry_factory, login):
    registry = registry_factory(auth="token", users={USER: GOOD})

    outcome = login(registry.key, entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "ok", outcome
    assert "Bearer" in outcome.detail
    assert registry_requests(registry, 1) == 1  # only the challenge: the token is not replayed


def test_bearer_token_request_carries_service_account_and_basic_auth(token_server_factory,
                                                                      registry_factory, login):
    tokens = token_server_factory(users={USER: GOOD})
    registry = registry_factory(auth="token", token_server=tokens)

    outcome = login(registry.key, entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "ok", outcome
    assert [(r.service, r.account, r.authorization, r.status) for r in tokens.requests] == [
        ("pss-test-registry", USER, True, 200)]


def test_scope_of_the_challenge_is_asked_for(token_server_factory, registry_factory,
                                              fault_proxy, login):
    tokens = token_server_factory(users={USER: GOOD})
    registry = registry_factory(auth="token", token_server=tokens)
    proxy = fault_proxy(registry.url)
    proxy.fail(401, path="^/v2/$", times=1, headers={"WWW-Authenticate": (
        f'Bearer realm="{tokens.realm}",service="pss-test-registry",'
        'scope="repository:team/app:pull"')})

    outcome = login(proxy.url.split("://")[1], entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "ok", outcome
    assert [r.scopes for r in tokens.requests] == [("repository:team/app:pull",)]


def test_good_credential_is_ok_through_an_https_realm_without_plain_http(registry_factory,
                                                                          login):
    registry = registry_factory(auth="token", users={USER: GOOD}, tls=True)

    outcome = login(registry.key, entry(USER, GOOD),
                    options=verify.Options(ca_cert=registry.ca_file))

    assert outcome.result == "ok", outcome


def test_entry_without_auth_uses_username_and_password(registry_factory, login):
    registry = registry_factory(users={USER: GOOD})

    outcome = login(registry.key, {"username": USER, "password": GOOD}, options=PLAIN)

    assert outcome.result == "ok", outcome


def test_anonymous_registry_is_ok_with_nothing_to_verify(registry_factory, login):
    registry = registry_factory(auth="none")

    outcome = login(registry.key, entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "ok"
    assert "anonymous" in outcome.detail and "nothing to verify" in outcome.detail


# --------------------------------------------------------------------------- rejections


def test_wrong_password_is_rejected_by_basic_auth(registry_factory, login):
    registry = registry_factory(users={USER: GOOD})

    outcome = login(registry.key, entry(USER, BAD), options=PLAIN)

    assert outcome == verify.Outcome("rejected",
                                     f"{registry.key} refused the credential (Basic, 401)")
    assert registry_requests(registry, 2) == 2


def test_password_rotated_at_the_registry_rejects_the_old_one(registry_factory, login):
    registry = registry_factory(users={USER: BAD})
    assert login(registry.key, entry(USER, BAD), options=PLAIN).result == "ok"

    registry.set_users({USER: GOOD})

    assert login(registry.key, entry(USER, BAD), options=PLAIN).result == "rejected"
    assert login(registry.key, entry(USER, GOOD), options=PLAIN).result == "ok"


def test_wrong_password_is_rejected_by_the_token_realm(token_server_factory, registry_factory,
                                                       login):
    tokens = token_server_factory(users={USER: GOOD})
    registry = registry_factory(auth="token", token_server=tokens)

    outcome = login(registry.key, entry(USER, BAD), options=PLAIN)

    assert outcome.result == "rejected", outcome
    assert "token realm" in outcome.detail and "401" in outcome.detail
    assert [r.status for r in tokens.requests] == [401]


def test_malformed_auth_is_rejected_without_asking_anyone(registry_factory, login):
    registry = registry_factory(users={USER: GOOD})

    outcome = login(registry.key, {"auth": "bm90LWEtcGFpcg=="}, options=PLAIN)  # "not-a-pair"

    assert outcome.result == "rejected"
    assert "'auth'" in outcome.detail
    assert registry.count() == 0


# --------------------------------------------------------------------------- unreachable


def test_registry_down_is_unreachable_and_up_again_is_ok(registry_factory, login):
    registry = registry_factory(users={USER: GOOD})
    registry.stop()

    down = login(registry.key, entry(USER, GOOD), options=PLAIN, timeout=3)
    registry.start()
    up = login(registry.key, entry(USER, GOOD), options=PLAIN, timeout=3)

    assert down == verify.Outcome("unreachable",
                                  f"{registry.key}: connection failed (ConnectionError)")
    assert up.result == "ok"


def test_closed_port_is_unreachable(login):
    key = f"127.0.0.1:{procs.free_port()}"

    outcome = login(key, entry(USER, GOOD), options=PLAIN, timeout=3)

    assert outcome.result == "unreachable"
    assert "connection failed" in outcome.detail


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_of_the_registry_is_unreachable(registry_factory, fault_proxy, login,
                                                     status):
    registry = registry_factory(users={USER: GOOD})
    proxy = fault_proxy(registry.url)
    proxy.fail(status, path="^/v2/")

    outcome = login(proxy.url.split("://")[1], entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "unreachable"
    assert f"answered {status} (server error)" in outcome.detail
    assert proxy.count(path="^/v2/") == 1


def test_server_error_of_the_token_realm_is_unreachable(token_server_factory, registry_factory,
                                                        fault_proxy, login):
    tokens = token_server_factory(users={USER: GOOD})
    proxy = fault_proxy(tokens.url)
    registry = registry_factory(auth="token", token_server=tokens, realm=proxy.url + "/token")
    proxy.fail(503)

    outcome = login(registry.key, entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "unreachable"
    assert "token realm" in outcome.detail and "503" in outcome.detail
    assert proxy.count(path="^/token") == 1 and tokens.requests == []


def test_token_realm_answering_without_a_token_is_unreachable(token_server_factory,
                                                              registry_factory, fault_proxy,
                                                              login):
    tokens = token_server_factory(users={USER: GOOD})
    proxy = fault_proxy(tokens.url)
    registry = registry_factory(auth="token", token_server=tokens, realm=proxy.url + "/token")
    proxy.fail(200, body='{"expires_in": 300}', headers={"Content-Type": "application/json"})

    outcome = login(registry.key, entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "unreachable"
    assert "without a token" in outcome.detail


def test_slow_registry_is_unreachable_after_the_timeout(registry_factory, fault_proxy, login):
    registry = registry_factory(users={USER: GOOD})
    proxy = fault_proxy(registry.url)
    proxy.delay(5, path="^/v2/")

    outcome = login(proxy.url.split("://")[1], entry(USER, GOOD), options=PLAIN, timeout=0.5)

    assert outcome.result == "unreachable"
    assert "no complete answer within 0.5s" in outcome.detail


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (401, {}, "401 without a Basic or Bearer challenge"),
    (401, {"WWW-Authenticate": 'Negotiate realm="x"'}, "401 without a Basic or Bearer challenge"),
    (404, {}, "no registry API v2 there"),
    (403, {}, "unexpected 403"),
])
def test_answers_that_are_not_a_login_flow_are_unreachable(registry_factory, fault_proxy, login,
                                                           status, headers, expected):
    registry = registry_factory(users={USER: GOOD})
    proxy = fault_proxy(registry.url)
    proxy.fail(status, path="^/v2/$", headers=headers)

    outcome = login(proxy.url.split("://")[1], entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "unreachable"
    assert expected in outcome.detail


def test_wildcard_key_cannot_be_checked(login):
    outcome = login("*.example.com", entry(USER, GOOD))

    assert outcome.result == "unreachable"
    assert "wildcard" in outcome.detail


# --------------------------------------------------------------------------- TLS


def test_tls_without_the_ca_cert_is_unreachable_because_verification_failed(registry_factory,
                                                                             login):
    registry = registry_factory(users={USER: GOOD}, tls=True)

    outcome = login(registry.key, entry(USER, GOOD))

    assert outcome.result == "unreachable"
    assert "TLS verification failed" in outcome.detail
    assert registry.count() == 0  # the handshake failed: no request, no credential sent


def test_insecure_skip_verify_is_ok_and_warns(registry_factory, login, caplog):
    registry = registry_factory(users={USER: GOOD}, tls=True)

    outcome = login(registry.key, entry(USER, GOOD),
                    options=verify.Options(insecure_skip_verify=True))

    assert outcome.result == "ok", outcome
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "syncer.credentials.verify"]
    assert [getattr(r, "registry", None) for r in warnings] == [registry.key]


def test_plain_http_against_a_tls_registry_is_unreachable(registry_factory, login):
    registry = registry_factory(users={USER: GOOD}, tls=True)

    outcome = login(registry.key, entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "unreachable"


def test_unreadable_ca_cert_is_unreachable(registry_factory, login, tmp_path):
    registry = registry_factory(users={USER: GOOD}, tls=True)

    outcome = login(registry.key, entry(USER, GOOD),
                    options=verify.Options(ca_cert=tmp_path / "missing.pem"))

    assert outcome == verify.Outcome("unreachable", "the caCert file cannot be read")


# --------------------------------------------------------------------------- where credentials go


def test_realm_over_http_on_another_host_is_refused_and_never_asked(token_server_factory,
                                                                    registry_factory, login):
    elsewhere = token_server_factory(users={USER: GOOD}, host=OTHER_HOST)
    registry = registry_factory(auth="token", tls=True, token_server=elsewhere)
    assert elsewhere.realm.startswith(f"http://{OTHER_HOST}:")

    outcome = login(registry.key, entry(USER, GOOD),
                    options=verify.Options(ca_cert=registry.ca_file))

    assert outcome.result == "unreachable"
    assert "plain http" in outcome.detail and "plainHttp" in outcome.detail
    assert elsewhere.requests == []
    assert registry_requests(registry, 1) == 1


class Scripted:
    """A tiny HTTP server whose answers the test scripts; records (path, Authorization sent?)."""

    def __init__(self, host: str,
                 answer: Callable[[str, bool], tuple[int, dict[str, str], bytes]]) -> None:
        self.records: list[tuple[str, bool]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                authorized = "Authorization" in self.headers
                owner.records.append((self.path, authorized))
                status, headers, body = answer(self.path, authorized)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.hostport = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    made: list[Scripted] = []

    def make(host: str, answer: Callable[[str, bool], tuple[int, dict[str, str], bytes]],
             ) -> Scripted:
        made.append(Scripted(host, answer))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def _welcoming(path: str, authorized: bool) -> tuple[int, dict[str, str], bytes]:
    """What a credential thief would answer: 200 and a token to anything."""
    return 200, {"Content-Type": "application/json"}, b'{"token": "stolen"}'


@pytest.mark.parametrize("where", ["first request", "after the Basic challenge", "token realm"])
def test_redirect_to_another_host_is_not_followed_with_credentials(scripted, login, where):
    target = scripted(OTHER_HOST, _welcoming)
    elsewhere = {"Location": f"http://{target.hostport}/v2/"}

    def registry(path: str, authorized: bool) -> tuple[int, dict[str, str], bytes]:
        if where == "first request":
            return 302, elsewhere, b""
        if where == "after the Basic challenge":
            return (307, elsewhere, b"") if authorized else (
                401, {"WWW-Authenticate": 'Basic realm="r"'}, b"")
        if path.startswith("/token"):
            return 302, {"Location": f"http://{target.hostport}/token"}, b""
        return 401, {"WWW-Authenticate": f'Bearer realm="http://{origin.hostport}/token",'
                                         'service="s"'}, b""

    origin = scripted("127.0.0.1", registry)

    outcome = login(origin.hostport, entry(USER, GOOD), options=PLAIN)

    assert outcome.result == "unreachable"
    assert "redirect" in outcome.detail and "not followed" in outcome.detail
    assert target.records == []
    assert origin.records  # the registry itself was asked


# --------------------------------------------------------------------------- a real client agrees


@pytest.mark.parametrize("mode", ["basic over http", "basic over tls", "bearer over tls"])
def test_skopeo_agrees_with_the_check(registry_factory, login, tmp_path, mode, leak_values):
    registry = registry_factory(auth="token" if "bearer" in mode else "htpasswd",
                                users={USER: GOOD}, tls="tls" in mode)
    tls = registry.ca_file is not None
    certs = skopeo.ca_dir(registry.ca_file, tmp_path / "certs") if tls else None
    options = verify.Options(ca_cert=registry.ca_file) if tls else PLAIN
    ref = registry.ref("team/app")
    skopeo.push(skopeo.make_image(tmp_path / "image"), ref, username=USER, password=GOOD,
                tls_verify=tls, cert_dir=certs)

    results = {}
    for password in (GOOD, BAD):
        outcome = login(registry.key, entry(USER, password), options=options)
        client = skopeo.inspect(dockerconfig(registry.key, USER, password), ref,
                                tls_verify=tls, ca_dir=certs)
        assert not find_leaks(client.stdout + client.stderr, leak_values)
        results[password] = (outcome.result, client.returncode == 0)

    assert results == {GOOD: ("ok", True), BAD: ("rejected", False)}
