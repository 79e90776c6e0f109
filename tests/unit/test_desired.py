"""desired.compute / selects / render_mapping: which namespaces get which Secret, and its bytes.

Config values are built directly from the models of syncer.config (no YAML), so these
tests pin the selection and rendering rules of docs/configuration.md independently of the
config loader.
"""

from __future__ import annotations

import json

import pytest

from syncer import config
from syncer.core import frozen, model
from syncer.decide import desired
from tests.unit.builders import basic, make_config, make_mapping

SENTINEL = "pw-SENTINEL-7f3a"
GHCR_SENTINEL = "ghp-SENTINEL-91c2"


# --- builders ------------------------------------------------------------------------------------


def selector(
    match_labels: dict[str, str] | None = None, *expressions: config.Requirement
) -> config.LabelSelector:
    return config.LabelSelector(
        match_labels=frozen.FrozenMap(match_labels or {}), match_expressions=expressions
    )


def ns(name: str, labels: dict[str, str] | None = None, *, terminating: bool = False
       ) -> model.Namespace:
    return model.Namespace(name=name, labels=labels or {}, terminating=terminating)


HUB = basic("docker.io", "hub-bot", SENTINEL)
GHCR = basic("ghcr.io", "gh-bot", GHCR_SENTINEL)
CREDS = {"dockerhub": HUB, "ghcr": GHCR}


def selected(selection_mapping: config.MappingSpec, *namespaces: model.Namespace) -> list[str]:
    return [n.name for n in namespaces if desired.selects(selection_mapping.namespaces, n)]


# --- selection -----------------------------------------------------------------------------------


def test_names_select_exactly_the_listed_namespaces() -> None:
    m = make_mapping(names=("team-a-dev",))
    assert selected(m, ns("team-a-dev"), ns("team-a-dev2"), ns("team-a"), ns("x-team-a-dev")) == [
        "team-a-dev"
    ]


def test_names_are_not_globs() -> None:
    m = make_mapping(names=("team-*",))
    assert selected(m, ns("team-a"), ns("team-*")) == ["team-*"]


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        (
            "team-a-*",
            ["team-a-dev", "team-a-prod", "team-a-"],
            ["team-b-dev", "team-a", "xteam-a-1"],
        ),
        ("team-?", ["team-a", "team-b"], ["team-ab", "team-"]),
        ("team-[ab]-dev", ["team-a-dev", "team-b-dev"], ["team-c-dev"]),
        ("*-dev", ["team-a-dev", "x-dev"], ["team-a-prod", "dev"]),
    ],
)
def test_patterns_are_shell_style_globs(
    pattern: str, matching: list[str], not_matching: list[str]
) -> None:
    m = make_mapping(patterns=(pattern,))
    candidates = [ns(n) for n in matching + not_matching]
    assert selected(m, *candidates) == matching


def test_patterns_are_case_sensitive() -> None:
    m = make_mapping(patterns=("team-*",))
    assert selected(m, ns("Team-a"), ns("team-a")) == ["team-a"]


def test_any_of_names_patterns_or_selector_selects() -> None:
    m = make_mapping(
        names=("billing",),
        patterns=("team-a-*",),
        selector=selector({"pull-secrets": "enabled"}),
    )
    assert selected(
        m,
        ns("billing"),
        ns("team-a-dev"),
        ns("shop", {"pull-secrets": "enabled"}),
        ns("other", {"pull-secrets": "disabled"}),
    ) == ["billing", "team-a-dev", "shop"]


def test_match_labels_require_every_pair() -> None:
    m = make_mapping(selector=selector({"pull-secrets": "enabled", "tier": "web"}))
    assert selected(
        m,
        ns("both", {"pull-secrets": "enabled", "tier": "web", "extra": "x"}),
        ns("one", {"pull-secrets": "enabled"}),
        ns("wrong-value", {"pull-secrets": "enabled", "tier": "db"}),
        ns("none"),
    ) == ["both"]


@pytest.mark.parametrize(
    ("requirement", "labels", "expected"),
    [
        (config.Requirement(key="env", operator="In", values=("dev", "qa")), {"env": "dev"}, True),
        (
            config.Requirement(key="env", operator="In", values=("dev", "qa")),
            {"env": "prod"},
            False,
        ),
        (config.Requirement(key="env", operator="In", values=("dev", "qa")), {}, False),
        (config.Requirement(key="env", operator="NotIn", values=("prod",)), {"env": "dev"}, True),
        (config.Requirement(key="env", operator="NotIn", values=("prod",)), {"env": "prod"}, False),
        # Kubernetes semantics: NotIn also matches objects without the key.
        (config.Requirement(key="env", operator="NotIn", values=("prod",)), {}, True),
        (config.Requirement(key="env", operator="Exists"), {"env": ""}, True),
        (config.Requirement(key="env", operator="Exists"), {"other": "x"}, False),
        (config.Requirement(key="env", operator="DoesNotExist"), {"other": "x"}, True),
        (config.Requirement(key="env", operator="DoesNotExist"), {"env": "dev"}, False),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict | bool) else None,
)
def test_match_expressions_follow_kubernetes_semantics(
    requirement: config.Requirement, labels: dict[str, str], expected: bool
) -> None:
    m = make_mapping(selector=selector(None, requirement))
    assert desired.selects(m.namespaces, ns("team", labels)) is expected


def test_match_labels_and_every_expression_must_all_hold() -> None:
    sel = selector(
        {"pull-secrets": "enabled"},
        config.Requirement(key="env", operator="In", values=("dev",)),
        config.Requirement(key="legacy", operator="DoesNotExist"),
    )
    m = make_mapping(selector=sel)
    assert selected(
        m,
        ns("all", {"pull-secrets": "enabled", "env": "dev"}),
        ns("no-label", {"env": "dev"}),
        ns("wrong-env", {"pull-secrets": "enabled", "env": "prod"}),
        ns("legacy", {"pull-secrets": "enabled", "env": "dev", "legacy": "true"}),
    ) == ["all"]


def test_exclude_wins_over_names_patterns_and_selector() -> None:
    m = make_mapping(
        names=("team-a-dev", "team-a-secret"),
        patterns=("team-a-*",),
        selector=selector({"pull-secrets": "enabled"}),
        exclude=("team-a-secret", "team-a-tmp-*"),
    )
    assert selected(
        m,
        ns("team-a-dev"),
        ns("team-a-secret", {"pull-secrets": "enabled"}),
        ns("team-a-tmp-1"),
        ns("team-a-tmp-2", {"pull-secrets": "enabled"}),
        ns("team-a-prod"),
    ) == ["team-a-dev", "team-a-prod"]


@pytest.mark.parametrize("reserved", ["kube-system", "kube-public", "kube-node-lease"])
def test_reserved_namespaces_are_never_selected_by_pattern_or_selector(reserved: str) -> None:
    everything = make_mapping(
        patterns=("*", "kube-*"),
        selector=selector({}),  # the empty selector selects every other namespace
    )
    assert selected(everything, ns(reserved, {"pull-secrets": "enabled"}), ns("team-a")) == [
        "team-a"
    ]
    by_label = make_mapping(selector=selector({"pull-secrets": "enabled"}))
    assert not desired.selects(by_label.namespaces, ns(reserved, {"pull-secrets": "enabled"}))


@pytest.mark.parametrize("reserved", ["kube-system", "kube-public", "kube-node-lease"])
def test_reserved_namespaces_are_selected_when_listed_in_names(reserved: str) -> None:
    m = make_mapping(names=(reserved,))
    assert desired.selects(m.namespaces, ns(reserved))


def test_exclude_wins_even_for_a_reserved_namespace_listed_in_names() -> None:
    m = make_mapping(names=("kube-system",), exclude=("kube-*",))
    assert not desired.selects(m.namespaces, ns("kube-system"))


# --- compute -------------------------------------------------------------------------------------


def test_each_selected_namespace_gets_a_target_with_the_mapping_settings() -> None:
    m = make_mapping(
        "team-a",
        patterns=("team-a-*",),
        secret_name="pullcreds",
        credentials=("dockerhub", "ghcr"),
        service_accounts=("*",),
        adopt=True,
    )
    want = desired.compute(
        make_config(m), CREDS, [ns("team-a-dev"), ns("team-a-prod"), ns("team-b-dev")]
    )
    assert sorted(want.targets) == [("team-a-dev", "pullcreds"), ("team-a-prod", "pullcreds")]
    target = want.targets[("team-a-dev", "pullcreds")]
    assert (target.namespace, target.name, target.mapping) == ("team-a-dev", "pullcreds", "team-a")
    assert target.credentials == ("dockerhub", "ghcr")
    assert target.service_accounts == ("*",)
    assert target.adopt is True
    assert target.rendered == desired.render_mapping(m, CREDS)
    assert want.conflicts == ()


def test_terminating_namespace_gets_nothing() -> None:
    m = make_mapping(patterns=("team-*",))
    want = desired.compute(
        make_config(m), CREDS, [ns("team-a", terminating=True), ns("team-b")]
    )
    assert list(want.targets) == [("team-b", "regcred")]


def test_same_secret_name_first_mapping_in_file_order_wins_and_conflict_is_reported() -> None:
    # "zeta" comes first in the file: file order decides, not the alphabet.
    first = make_mapping("zeta", patterns=("team-*",), credentials=("ghcr",))
    second = make_mapping("alpha", names=("team-a",), credentials=("dockerhub",))
    want = desired.compute(make_config(first, second), CREDS, [ns("team-a"), ns("team-b")])
    assert want.targets[("team-a", "regcred")].mapping == "zeta"
    assert want.targets[("team-a", "regcred")].credentials == ("ghcr",)
    assert want.targets[("team-b", "regcred")].mapping == "zeta"
    assert want.conflicts == (
        desired.MappingConflict(namespace="team-a", secret_name="regcred", winner="zeta",
                                loser="alpha"),
    )


def test_different_secret_names_in_one_namespace_are_both_wanted() -> None:
    hub = make_mapping("hub", names=("team-a",), secret_name="hub-creds")
    gh = make_mapping("gh", names=("team-a",), secret_name="gh-creds", credentials=("ghcr",))
    want = desired.compute(make_config(hub, gh), CREDS, [ns("team-a")])
    assert {k: t.mapping for k, t in want.targets.items()} == {
        ("team-a", "hub-creds"): "hub",
        ("team-a", "gh-creds"): "gh",
    }
    assert want.conflicts == ()


def test_scope_limits_the_answer_to_the_given_namespaces() -> None:
    m = make_mapping(patterns=("team-*",))
    all_ns = [ns("team-a"), ns("team-b"), ns("team-c")]
    want = desired.compute(make_config(m), CREDS, all_ns, scope=["team-b"])
    assert list(want.targets) == [("team-b", "regcred")]
    assert want.in_scope("team-b")
    assert not want.in_scope("team-a")
    unscoped = desired.compute(make_config(m), CREDS, all_ns)
    assert unscoped.in_scope("anything")
    assert len(unscoped.targets) == 3


def test_the_answer_does_not_depend_on_namespace_listing_order() -> None:
    cfg = make_config(
        make_mapping("one", patterns=("team-*",)),
        make_mapping("two", patterns=("team-a*", "other")),
    )
    namespaces = [ns("team-b"), ns("other"), ns("team-a"), ns("team-a2")]
    forward = desired.compute(cfg, CREDS, namespaces)
    backward = desired.compute(cfg, CREDS, list(reversed(namespaces)))
    assert forward == backward
    assert [c.namespace for c in forward.conflicts] == ["team-a", "team-a2"]


# --- rendering -----------------------------------------------------------------------------------


def test_rendered_secret_is_a_sorted_docker_config_with_every_credential() -> None:
    m = make_mapping(credentials=("dockerhub", "ghcr"))
    rendered = desired.render_mapping(m, CREDS)
    assert rendered.data is not None
    assert rendered.missing == ()
    document = json.loads(rendered.data)
    assert list(document) == ["auths"]
    assert list(document["auths"]) == ["ghcr.io", "https://index.docker.io/v1/"]
    assert document["auths"]["ghcr.io"]["password"] == GHCR_SENTINEL
    assert document["auths"]["https://index.docker.io/v1/"]["username"] == "hub-bot"


def test_identical_credentials_render_byte_identical_data_whatever_the_dict_order() -> None:
    entry = {"username": "hub-bot", "password": SENTINEL, "auth": "aHViLWJvdDp4", "email": "a@b"}
    hub_a = {"https://index.docker.io/v1/": dict(entry), "quay.io": {"auth": "cTp4"}}
    hub_b = {
        "quay.io": {"auth": "cTp4"},
        "https://index.docker.io/v1/": dict(reversed(list(entry.items()))),
    }
    m = make_mapping(credentials=("dockerhub", "ghcr"))
    first = desired.render_mapping(m, {"dockerhub": hub_a, "ghcr": GHCR})
    second = desired.render_mapping(m, {"ghcr": GHCR, "dockerhub": hub_b})
    assert first.data is not None
    assert first.data == second.data
    # and again, from scratch: no timestamp or other per-call churn
    assert desired.render_mapping(m, {"dockerhub": hub_a, "ghcr": GHCR}).data == first.data


def test_a_registry_claimed_by_an_earlier_credential_is_kept_and_the_later_one_reported() -> None:
    other_hub = basic("index.docker.io", "other-bot", "other-SENTINEL-2b")
    m = make_mapping(credentials=("dockerhub", "mirror"))
    rendered = desired.render_mapping(m, {"dockerhub": HUB, "mirror": other_hub})
    assert rendered.data is not None
    auths = json.loads(rendered.data)["auths"]
    assert auths["https://index.docker.io/v1/"]["username"] == "hub-bot"
    assert rendered.shadowed == (("mirror", "https://index.docker.io/v1/"),)


def test_a_credential_without_a_good_value_blocks_only_the_mappings_that_use_it() -> None:
    hub_only = make_mapping("hub-only", names=("ns-1",), credentials=("dockerhub",))
    both = make_mapping("both", names=("ns-2",), credentials=("dockerhub", "ghcr"))
    gh_only = make_mapping("gh-only", names=("ns-3",), credentials=("ghcr",))
    want = desired.compute(
        make_config(hub_only, both, gh_only), {"dockerhub": HUB},
        [ns("ns-1"), ns("ns-2"), ns("ns-3")],
    )
    assert want.rendered["hub-only"].data is not None
    assert want.rendered["hub-only"].missing == ()
    for name in ("both", "gh-only"):
        assert want.rendered[name].data is None
        assert want.rendered[name].missing == ("ghcr",)
    # the namespaces are still targets (so a last good Secret is kept), carrying the block
    assert want.targets[("ns-2", "regcred")].rendered.data is None
    assert want.targets[("ns-2", "regcred")].rendered.missing == ("ghcr",)
    assert want.targets[("ns-1", "regcred")].rendered.data is not None


def test_every_missing_credential_is_named_in_mapping_order() -> None:
    m = make_mapping(credentials=("ghcr", "quay", "dockerhub"))
    assert desired.render_mapping(m, {"dockerhub": HUB}).missing == ("ghcr", "quay")


def test_rendered_and_target_reprs_do_not_show_credential_values() -> None:
    m = make_mapping(names=("team-a",), credentials=("dockerhub", "ghcr"))
    want = desired.compute(make_config(m), CREDS, [ns("team-a")])
    text = repr(want)
    assert "SENTINEL" not in text
    assert "auths" not in text
    # sanity: the values really are in the data that repr hides
    assert SENTINEL.encode() in (want.rendered["team-a"].data or b"")
