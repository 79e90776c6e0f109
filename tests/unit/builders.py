"""Builders of config and credential values for the unit tests of the pure modules."""

from __future__ import annotations

from pathlib import Path

from syncer import config
from syncer.core import dockerconfig, frozen


def make_mapping(
    name: str = "team-a",
    *,
    names: tuple[str, ...] = (),
    patterns: tuple[str, ...] = (),
    selector: config.LabelSelector | None = None,
    exclude: tuple[str, ...] = (),
    secret_name: str = "regcred",
    credentials: tuple[str, ...] = ("dockerhub",),
    service_accounts: tuple[str, ...] = ("default",),
    adopt: bool = False,
    prune: bool = True,
) -> config.MappingSpec:
    return config.MappingSpec(
        name=name,
        namespaces=config.NamespaceSelection(
            names=names, patterns=patterns, selector=selector, exclude=exclude
        ),
        secret_name=secret_name,
        credentials=credentials,
        service_accounts=service_accounts,
        adopt_existing=adopt,
        prune=prune,
    )


def make_config(*mappings: config.MappingSpec, prune: bool = True,
                instance: str = "default") -> config.Config:
    return config.Config(
        path=Path("/etc/pullsecret-syncer/config.yaml"),
        defaults=config.Defaults(prune=prune),
        backends=frozen.FrozenMap(),
        credentials=frozen.FrozenMap(),
        mappings=mappings,
        instance=instance,
    )


def basic(registry: str, username: str, password: str) -> dockerconfig.Auths:
    return dockerconfig.parse_payload(
        {"username": username, "password": password},
        fields=dockerconfig.FieldNames(),
        registry=registry,
    )
