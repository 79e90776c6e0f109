"""The ECR token proxy changes only the token and expiry of GetAuthorizationToken answers."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from stack import ecrtokens


def test_proxy_makes_motos_tokens_unique_and_fresh_and_keeps_the_rest(aws: Any) -> None:
    direct = aws.client("ecr").get_authorization_token(registryIds=["210987654321"])
    with ecrtokens.EcrTokenProxy(aws.endpoint, lifetime=600, clock=lambda: 2e9) as proxy:
        ecr = aws.client("ecr", endpoint_url=proxy.url)
        first, second = (ecr.get_authorization_token(registryIds=["210987654321"])
                         ["authorizationData"][0] for _ in range(2))

    moto = direct["authorizationData"][0]
    assert moto["expiresAt"] == datetime.datetime(2015, 1, 1, tzinfo=datetime.UTC)
    assert first["proxyEndpoint"] == second["proxyEndpoint"] == moto["proxyEndpoint"]
    assert first["authorizationToken"] != second["authorizationToken"]
    assert first["expiresAt"].timestamp() == 2e9 + 600
    assert base64.b64decode(first["authorizationToken"]).decode().startswith(
        "AWS:210987654321-auth-token-tok-1-")
    assert [i.token for i in proxy.issued] == [
        first["authorizationToken"], second["authorizationToken"]]


def test_proxy_relays_other_services_unchanged_and_records_the_signer(
    aws: Any, unique: str
) -> None:
    with ecrtokens.EcrTokenProxy(aws.endpoint) as proxy:
        sm = aws.client("secretsmanager", endpoint_url=proxy.url)
        sm.create_secret(Name=f"relay-{unique}", SecretString='{"a": "b"}')
        value = sm.get_secret_value(SecretId=f"relay-{unique}")["SecretString"]

    assert value == '{"a": "b"}'
    assert [s.access_key_id for s in proxy.seen] == [aws.access_key_id] * 2
    assert proxy.issued == []
