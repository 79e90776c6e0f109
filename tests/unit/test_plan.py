"""plan.diff / plan.service_account_change / actions: the writes a pass makes, and only those.

The desired side always comes from desired.compute (as in the engine); the observed side is built
from model records shaped the way kube.py parses them. Config values are built directly from the
models of syncer.config (no YAML).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable
from typing import Any

import jsonpatch
import pytest

from syncer import config
from syncer.core import dockerconfig, model
from syncer.decide import desired, plan
from syncer.kube import codec
from syncer.present import actions as render
from tests.unit.builders import basic, make_config, make_mapping

SENTINEL = "pw-SENTINEL-7f3a"
GHCR_SENTINEL = "ghp-SENTINEL-91c2"
ROTATED_SENTINEL = "pw-SENTINEL-rotated-55d1"
NS = "team-a-dev"
KEY = model.DOCKERCONFIG_KEY


# --- builders ------------------------------------------------------------------------------------


HUB = basic("docker.io", "hub-bot", SENTINEL)
GHCR = basic("ghcr.io", "gh-bot", GHCR_SENTINEL)
CREDS: dict[str, dockerconfig.Auths] = {"dockerhub": HUB, "ghcr": GHCR}


def ns(name: str, *, terminating: bool = False) -> model.Namespace:
    return model.Namespace(name=name, terminating=terminating)


def managed_secret(
    namespace: str = NS,
    name: str = "regcred",
    *,
    mapping: str = "team-a",
    credentials: tuple[str, ...] = ("dockerhub",),
    data: bytes | None = b'{"auths":{}}',
    data_keys: tuple[str, ...] = (KEY,),
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    managed: bool = True,
    rv: str = "100",
    instance: str = model.DEFAULT_INSTANCE,
    digest: str | None = None,
) -> model.Secret:
    return model.Secret(
        namespace=namespace,
        name=name,
        managed=managed,
        type=model.SECRET_TYPE,
        digest=digest if digest is not None or data is None else model.digest(data),
        data_keys=data_keys,
        labels={model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE} if labels is None else labels,
        annotations=(
            {model.MAPPING_ANNOTATION: mapping,
             model.CREDENTIALS_ANNOTATION: ",".join(credentials),
             model.INSTANCE_ANNOTATION: instance,
             model.WRITTEN_AS_ANNOTATION: f"{namespace}/{name}"}
            if annotations is None else annotations
        ),
        resource_version=rv,
    )


def written_secret(
    cfg: config.Config, mapping: str, namespace: str = NS, *,
    creds: dict[str, dockerconfig.Auths] | None = None, rv: str = "100",
) -> model.Secret:
    """The Secret exactly as the syncer writes it for `mapping` (i.e. in sync)."""
    spec = next(m for m in cfg.mappings if m.name == mapping)
    data = desired.render_mapping(spec, CREDS if creds is None else creds).data
    assert data is not None
    return managed_secret(namespace, spec.secret_name, mapping=mapping,
                          credentials=spec.credentials, data=data, rv=rv)


def sa(
    namespace: str = NS,
    name: str = "default",
    *,
    pulls: tuple[str, ...] = (),
    ours: tuple[str, ...] = (),
    rv: str = "7",
    has_annotations: bool = True,
) -> model.ServiceAccount:
    return model.ServiceAccount(
        namespace=namespace, name=name, image_pull_secrets=pulls, ours=ours,
        resource_version=rv, has_annotations=has_annotations or bool(ours),
    )


def make_view(
    namespaces: Iterable[model.Namespace],
    secrets: Iterable[model.Secret] = (),
    accounts: Iterable[model.ServiceAccount] = (),
) -> model.ClusterView:
    by_ns: dict[str, dict[str, model.ServiceAccount]] = {}
    for account in accounts:
        by_ns.setdefault(account.namespace, {})[account.name] = account
    return model.ClusterView(
        namespaces={n.name: n for n in namespaces},
        secrets={(s.namespace, s.name): s for s in secrets},
        service_accounts=by_ns,
    )


def run_plan(
    cfg: config.Config, view: model.ClusterView, *,
    creds: dict[str, dockerconfig.Auths] | None = None, scope: Iterable[str] | None = None,
) -> plan.Plan:
    want = desired.compute(cfg, CREDS if creds is None else creds, view.namespaces.values(),
                           scope=scope)
    return plan.diff(cfg, want, view)


def lines(the_plan: plan.Plan) -> list[str]:
    return [render.describe(a) for a in the_plan.actions]


def patch_ops(account: model.ServiceAccount, *, add: tuple[str, ...],
              remove: tuple[str, ...]) -> list[dict[str, Any]] | None:
    """The JSON patch the real client sends for the planned change (None: no change)."""
    change = plan.service_account_change(account, add=add, remove=remove)
    return None if change is None else codec.service_account_patch(change)


# A ServiceAccount as API JSON, and back (the shape kube.parse_service_account reads).
def sa_object(account: model.ServiceAccount, *, other_annotations: bool = True) -> dict[str, Any]:
    annotations: dict[str, str] = {}
    if other_annotations:
        annotations["kubernetes.io/description"] = "keep me"
    if account.ours:
        annotations[model.SA_ANNOTATION] = ",".join(account.ours)
    meta: dict[str, Any] = {"name": account.name, "namespace": account.namespace,
                            "resourceVersion": account.resource_version, "uid": "u-1"}
    if annotations:
        meta["annotations"] = annotations
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta,
                           "secrets": [{"name": f"{account.name}-token-x1"}]}
    if account.image_pull_secrets:
        obj["imagePullSecrets"] = [{"name": n} for n in account.image_pull_secrets]
    return obj


def sa_from_object(obj: dict[str, Any]) -> model.ServiceAccount:
    meta = obj["metadata"]
    annotations = meta.get("annotations") or {}
    return model.ServiceAccount(
        namespace=meta["namespace"], name=meta["name"],
        image_pull_secrets=tuple(r["name"] for r in obj.get("imagePullSecrets") or []),
        ours=model.split_names(annotations.get(model.SA_ANNOTATION)),
        resource_version=meta["resourceVersion"], has_annotations=bool(annotations),
    )


def apply_plan(view: model.ClusterView, the_plan: plan.Plan) -> model.ClusterView:
    """What the cluster looks like after the plan's writes (a tiny in-memory API server)."""
    secrets = dict(view.secrets)
    accounts = {k: dict(v) for k, v in view.service_accounts.items()}
    for a in the_plan.actions:
        if isinstance(a, plan.CreateSecret | plan.UpdateSecret | plan.ReplaceSecret):
            c = a.content
            secrets[(c.namespace, c.name)] = managed_secret(
                c.namespace, c.name, mapping=c.mapping, credentials=c.credentials,
                data=c.data, rv="200")
        elif isinstance(a, plan.DeleteSecret):
            del secrets[(a.namespace, a.name)]
        else:
            current = accounts[a.namespace][a.name]
            ops = patch_ops(current, add=a.add, remove=a.remove)
            assert ops is not None, f"planned a no-op: {render.describe(a)}"
            obj = jsonpatch.apply_patch(sa_object(current), ops)
            obj["metadata"]["resourceVersion"] = str(int(current.resource_version) + 1)
            accounts[a.namespace][a.name] = sa_from_object(obj)
    return model.ClusterView(view.namespaces, secrets, accounts)


# --- creating, idling, rotating ------------------------------------------------------------------


def test_fresh_namespace_creates_the_secret_then_references_it() -> None:
    cfg = make_config(make_mapping(names=(NS,), credentials=("dockerhub", "ghcr")))
    the_plan = run_plan(cfg, make_view([ns(NS)], accounts=[sa()]))
    assert lines(the_plan) == [
        "create secret team-a-dev/regcred (dockerhub, ghcr)",
        "patch serviceaccount team-a-dev/default +regcred",
    ]
    create, patch = the_plan.actions
    assert create.content.data == desired.render_mapping(cfg.mappings[0], CREDS).data
    assert create.content.mapping == "team-a"
    assert patch.resource_version == "7"
    assert patch.add == ("regcred",)
    assert patch.remove == ()
    assert the_plan.conflicts == ()
    assert the_plan.blocked == ()


def test_unchanged_secret_and_service_account_mean_zero_writes() -> None:
    cfg = make_config(make_mapping(patterns=("team-a-*",), credentials=("dockerhub", "ghcr"),
                                   service_accounts=("*",)))
    view = make_view(
        [ns(NS), ns("team-a-prod")],
        [written_secret(cfg, "team-a"), written_secret(cfg, "team-a", "team-a-prod")],
        [sa(pulls=("regcred",), ours=("regcred",)),
         sa(name="builder", pulls=("corp", "regcred"), ours=("regcred",)),
         sa("team-a-prod", pulls=("regcred",), ours=("regcred",))],
    )
    the_plan = run_plan(cfg, view)
    assert the_plan.actions == ()
    assert the_plan.conflicts == ()
    assert the_plan.blocked == ()


def test_rotated_credential_updates_the_secret_once_with_its_resource_version() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    view = make_view([ns(NS)], [written_secret(cfg, "team-a", rv="4711")],
                     [sa(pulls=("regcred",), ours=("regcred",))])
    rotated = {"dockerhub": basic("docker.io", "hub-bot", ROTATED_SENTINEL)}
    the_plan = run_plan(cfg, view, creds=rotated)
    assert lines(the_plan) == ["update secret team-a-dev/regcred (dockerhub)"]
    (update,) = the_plan.actions
    assert update.resource_version == "4711"
    assert update.adopt is False
    assert update.content.data == desired.render_mapping(cfg.mappings[0], rotated).data
    assert update.content.data is not None
    assert ROTATED_SENTINEL.encode() in update.content.data


def test_rotation_rewrites_only_secrets_that_use_the_credential() -> None:
    cfg = make_config(
        make_mapping("hub", names=(NS,), secret_name="hub-creds", credentials=("dockerhub",)),
        make_mapping("gh", names=(NS,), secret_name="gh-creds", credentials=("ghcr",)),
        make_mapping("both", names=("team-b",), credentials=("dockerhub", "ghcr")),
    )
    view = make_view(
        [ns(NS), ns("team-b")],
        [written_secret(cfg, "hub"), written_secret(cfg, "gh"),
         written_secret(cfg, "both", "team-b")],
        [sa(pulls=("hub-creds", "gh-creds"), ours=("hub-creds", "gh-creds")),
         sa("team-b", pulls=("regcred",), ours=("regcred",))],
    )
    rotated = dict(CREDS, ghcr=basic("ghcr.io", "gh-bot", ROTATED_SENTINEL))
    assert lines(run_plan(cfg, view, creds=rotated)) == [
        "update secret team-a-dev/gh-creds (ghcr)",
        "update secret team-b/regcred (dockerhub, ghcr)",
    ]


def test_all_secret_writes_come_before_service_account_patches_in_a_namespace() -> None:
    cfg = make_config(
        make_mapping("hub", names=(NS,), secret_name="hub-creds", service_accounts=("*",)),
        make_mapping("gh", names=(NS,), secret_name="gh-creds", credentials=("ghcr",),
                     service_accounts=("*",)),
    )
    the_plan = run_plan(cfg, make_view([ns(NS)], accounts=[sa(), sa(name="builder")]))
    assert lines(the_plan) == [
        "create secret team-a-dev/hub-creds (dockerhub)",
        "create secret team-a-dev/gh-creds (ghcr)",
        "patch serviceaccount team-a-dev/builder +hub-creds +gh-creds",
        "patch serviceaccount team-a-dev/default +hub-creds +gh-creds",
    ]


def test_applying_a_plan_then_planning_again_gives_nothing_to_do() -> None:
    cfg = make_config(
        make_mapping("team-a", patterns=("team-a-*",), credentials=("dockerhub", "ghcr"),
                     service_accounts=("*",)),
        make_mapping("mirror", names=(NS,), secret_name="mirror", credentials=("ghcr",)),
    )
    view = make_view(
        [ns(NS), ns("team-a-prod"), ns("old")],
        [written_secret(cfg, "team-a", "team-a-prod", creds={"dockerhub": HUB, "ghcr": HUB}),
         managed_secret("old", mapping="team-a")],
        [sa(pulls=("corp",)), sa(name="builder", pulls=("regcred",), ours=()),
         sa("team-a-prod", ours=("regcred",)),
         sa("old", pulls=("corp", "regcred"), ours=("regcred",))],
    )
    first = run_plan(cfg, view)
    assert lines(first) == [
        "unpatch serviceaccount old/default -regcred",
        "delete secret old/regcred (dockerhub)",
        "create secret team-a-dev/regcred (dockerhub, ghcr)",
        "create secret team-a-dev/mirror (ghcr)",
        "patch serviceaccount team-a-dev/default +regcred +mirror",
        "update secret team-a-prod/regcred (dockerhub, ghcr)",
        "patch serviceaccount team-a-prod/default +regcred",
    ]
    after = apply_plan(view, first)
    assert run_plan(cfg, after).actions == ()
    assert after.service_accounts["old"]["default"].image_pull_secrets == ("corp",)
    assert after.service_accounts[NS]["default"].image_pull_secrets == (
        "corp", "regcred", "mirror")
    # someone else's "regcred" on builder stays theirs: we never claimed it
    assert after.service_accounts[NS]["builder"].ours == ()


# --- conflicts and adoption ----------------------------------------------------------------------


def test_unmanaged_secret_with_our_name_is_a_conflict_and_nothing_is_written_there() -> None:
    cfg = make_config(make_mapping(patterns=("team-a-*",)))
    theirs = managed_secret(managed=False, labels={"owner": "someone"}, annotations={},
                            data_keys=(KEY, "notes"))
    the_plan = run_plan(cfg, make_view([ns(NS), ns("team-a-prod")], [theirs],
                                       [sa(), sa("team-a-prod")]))
    assert the_plan.conflicts == (plan.SecretConflict(NS, "regcred", "team-a"),)
    assert lines(the_plan) == [  # the other namespace is still served
        "create secret team-a-prod/regcred (dockerhub)",
        "patch serviceaccount team-a-prod/default +regcred",
    ]


def test_secret_whose_managed_by_label_was_removed_is_no_longer_ours() -> None:
    # kube.parse_secret says managed only while our label is there (docs/configuration.md: a
    # Secret without our label is never touched unless adoptExisting): such a Secret is a conflict.
    cfg = make_config(make_mapping(names=(NS,)))
    unlabelled = written_secret(cfg, "team-a")
    unlabelled = managed_secret(managed=False, labels={}, digest=unlabelled.digest)
    the_plan = run_plan(cfg, make_view([ns(NS)], [unlabelled], [sa()]))
    assert the_plan.actions == ()
    assert the_plan.conflicts == (plan.SecretConflict(NS, "regcred", "team-a"),)


def test_adopt_existing_takes_over_an_unmanaged_secret_then_references_it() -> None:
    cfg = make_config(make_mapping(names=(NS,), adopt=True))
    theirs = managed_secret(managed=False, labels={}, annotations={}, data=b"{}",
                            data_keys=(KEY, "notes"), rv="555")
    the_plan = run_plan(cfg, make_view([ns(NS)], [theirs], [sa()]))
    assert lines(the_plan) == [
        "adopt secret team-a-dev/regcred (dockerhub)",
        "patch serviceaccount team-a-dev/default +regcred",
    ]
    adopt = the_plan.actions[0]
    assert (adopt.verb, adopt.adopt, adopt.resource_version) == ("adopt", True, "555")
    assert adopt.content.data == desired.render_mapping(cfg.mappings[0], CREDS).data
    assert "notes" in adopt.drop_keys
    assert the_plan.conflicts == ()


def test_adopt_of_an_immutable_foreign_secret_is_a_conflict_not_a_write_refused_every_pass(
) -> None:
    """Its data cannot change (the apiserver answers 422): reported once as a conflict (the
    Warning Event is de-duplicated hourly), never written, the pass itself not failed."""
    import dataclasses

    cfg = make_config(make_mapping(names=(NS,), adopt=True))
    theirs = dataclasses.replace(managed_secret(managed=False, labels={}, annotations={},
                                                data=b"{}"), immutable=True)
    the_plan = run_plan(cfg, make_view([ns(NS)], [theirs], [sa()]))
    assert the_plan.actions == ()
    assert the_plan.conflicts == (plan.SecretConflict(NS, "regcred", "team-a", immutable=True),)

    # immutable but already holding exactly our data: adopting changes only metadata, allowed
    ours = desired.render_mapping(cfg.mappings[0], CREDS).data
    same = dataclasses.replace(theirs, digest=model.digest(ours))
    assert lines(run_plan(cfg, make_view([ns(NS)], [same], [sa()])))[0] == (
        "adopt secret team-a-dev/regcred (dockerhub)")


def test_adopt_while_the_credential_has_no_value_leaves_the_foreign_secret_alone() -> None:
    cfg = make_config(make_mapping(names=(NS,), adopt=True, credentials=("ghcr",)))
    theirs = managed_secret(managed=False, labels={}, annotations={})
    the_plan = run_plan(cfg, make_view([ns(NS)], [theirs], [sa()]), creds={"dockerhub": HUB})
    assert the_plan.actions == ()
    assert the_plan.blocked == (plan.Blocked(NS, "regcred", "team-a", ("ghcr",)),)


# --- credentials without a good value ------------------------------------------------------------


def test_blocked_target_keeps_the_last_good_secret_and_its_reference() -> None:
    cfg = make_config(make_mapping(names=(NS,), credentials=("dockerhub", "ghcr"),
                                   service_accounts=("*",)))
    last_good = written_secret(cfg, "team-a")
    view = make_view([ns(NS)], [last_good],
                     [sa(pulls=("regcred",), ours=("regcred",)), sa(name="new-sa")])
    the_plan = run_plan(cfg, view, creds={"dockerhub": HUB})
    # no write to the Secret, no reference dropped, and a new SA still gets the existing Secret
    assert lines(the_plan) == ["patch serviceaccount team-a-dev/new-sa +regcred"]


def test_blocked_target_without_a_secret_is_reported_and_no_account_points_at_it() -> None:
    cfg = make_config(make_mapping(names=(NS,), credentials=("dockerhub", "ghcr")))
    the_plan = run_plan(cfg, make_view([ns(NS)], accounts=[sa()]), creds={"dockerhub": HUB})
    assert the_plan.actions == ()
    assert the_plan.blocked == (plan.Blocked(NS, "regcred", "team-a", ("ghcr",)),)


def test_a_blocked_mapping_does_not_hold_back_another_secret_in_the_namespace() -> None:
    cfg = make_config(
        make_mapping("hub", names=(NS,), secret_name="hub-creds"),
        make_mapping("gh", names=(NS,), secret_name="gh-creds", credentials=("ghcr",)),
    )
    the_plan = run_plan(cfg, make_view([ns(NS)], accounts=[sa()]), creds={"dockerhub": HUB})
    assert lines(the_plan) == [
        "create secret team-a-dev/hub-creds (dockerhub)",
        "patch serviceaccount team-a-dev/default +hub-creds",
    ]
    assert [b.name for b in the_plan.blocked] == ["gh-creds"]


# --- which ServiceAccounts -----------------------------------------------------------------------


def test_star_patches_every_service_account_in_the_namespace() -> None:
    cfg = make_config(make_mapping(names=(NS,), service_accounts=("*",)))
    view = make_view([ns(NS)], [written_secret(cfg, "team-a")],
                     [sa(), sa(name="deployer"), sa(name="builder")])
    assert lines(run_plan(cfg, view)) == [
        "patch serviceaccount team-a-dev/builder +regcred",
        "patch serviceaccount team-a-dev/default +regcred",
        "patch serviceaccount team-a-dev/deployer +regcred",
    ]


def test_named_service_accounts_are_patched_only_when_present_and_never_created() -> None:
    cfg = make_config(make_mapping(names=(NS,), service_accounts=("default", "ci-runner")))
    view = make_view([ns(NS)], [written_secret(cfg, "team-a")], [sa(), sa(name="builder")])
    the_plan = run_plan(cfg, view)
    assert lines(the_plan) == ["patch serviceaccount team-a-dev/default +regcred"]
    # when ci-runner appears, it is patched
    view = make_view([ns(NS)], [written_secret(cfg, "team-a")],
                     [sa(pulls=("regcred",), ours=("regcred",)), sa(name="ci-runner")])
    assert lines(run_plan(cfg, view)) == ["patch serviceaccount team-a-dev/ci-runner +regcred"]


def test_a_reference_someone_else_already_added_is_not_duplicated_or_patched() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    view = make_view([ns(NS)], [written_secret(cfg, "team-a")],
                     [sa(pulls=("corp", "regcred"), ours=())])
    assert run_plan(cfg, view).actions == ()


def test_our_reference_removed_by_someone_is_added_back() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    view = make_view([ns(NS)], [written_secret(cfg, "team-a")],
                     [sa(pulls=("corp",), ours=("regcred",))])
    the_plan = run_plan(cfg, view)
    assert lines(the_plan) == ["patch serviceaccount team-a-dev/default +regcred"]
    assert the_plan.actions[0].remove == ()


def test_service_account_no_longer_selected_loses_our_reference_when_pruning() -> None:
    cfg = make_config(make_mapping(names=(NS,), service_accounts=("default",)))
    view = make_view(
        [ns(NS)], [written_secret(cfg, "team-a")],
        [sa(pulls=("regcred",), ours=("regcred",)),
         sa(name="builder", pulls=("corp", "regcred"), ours=("regcred",))],
    )
    the_plan = run_plan(cfg, view)
    assert lines(the_plan) == ["unpatch serviceaccount team-a-dev/builder -regcred"]
    no_prune = make_config(make_mapping(names=(NS,), service_accounts=("default",), prune=False))
    assert run_plan(no_prune, view).actions == ()


# --- pruning -------------------------------------------------------------------------------------


def test_namespace_no_longer_selected_unpatches_our_reference_before_deleting_the_secret() -> None:
    cfg = make_config(make_mapping(names=("elsewhere",)))
    view = make_view(
        [ns(NS), ns("elsewhere")],
        [managed_secret(credentials=("dockerhub", "ghcr"), rv="31"),
         written_secret(cfg, "team-a", "elsewhere")],
        [sa(pulls=("corp", "regcred", "other"), ours=("regcred",)),
         sa(name="builder", pulls=("regcred",), ours=()),  # someone else's entry: kept
         sa("elsewhere", pulls=("regcred",), ours=("regcred",))],
    )
    the_plan = run_plan(cfg, view)
    assert lines(the_plan) == [
        "unpatch serviceaccount team-a-dev/default -regcred",
        "delete secret team-a-dev/regcred (dockerhub, ghcr)",
    ]
    unpatch, delete = the_plan.actions
    assert unpatch.remove == ("regcred",)
    assert unpatch.add == ()
    assert delete.resource_version == "31"
    after = apply_plan(view, the_plan)
    assert after.service_accounts[NS]["default"].image_pull_secrets == ("corp", "other")
    assert after.service_accounts[NS]["builder"].image_pull_secrets == ("regcred",)


@pytest.mark.parametrize(
    ("defaults_prune", "mapping_prune"),
    [(False, False), (True, False)],
    ids=["defaults-off", "mapping-off"],
)
def test_prune_disabled_keeps_secret_and_references_when_namespace_stops_matching(
    defaults_prune: bool, mapping_prune: bool
) -> None:
    cfg = make_config(make_mapping(names=("elsewhere",), prune=mapping_prune),
                      prune=defaults_prune)
    view = make_view([ns(NS)], [managed_secret()], [sa(pulls=("regcred",), ours=("regcred",))])
    assert run_plan(cfg, view).actions == ()


def test_mapping_removed_from_config_is_pruned_per_defaults() -> None:
    leftover = managed_secret(mapping="retired", credentials=("ghcr",))
    accounts = [sa(pulls=("regcred",), ours=("regcred",))]
    view = make_view([ns(NS)], [leftover], accounts)
    other = make_mapping("other", names=("unrelated",))
    assert lines(run_plan(make_config(other, prune=True), view)) == [
        "unpatch serviceaccount team-a-dev/default -regcred",
        "delete secret team-a-dev/regcred (ghcr)",
    ]
    assert run_plan(make_config(other, prune=False), view).actions == ()


def test_renamed_secret_is_created_referenced_and_the_old_one_pruned() -> None:
    cfg = make_config(make_mapping(names=(NS,), secret_name="pullcreds"))
    view = make_view([ns(NS)], [managed_secret()], [sa(pulls=("regcred",), ours=("regcred",))])
    the_plan = run_plan(cfg, view)
    assert lines(the_plan) == [
        "create secret team-a-dev/pullcreds (dockerhub)",
        "patch serviceaccount team-a-dev/default +pullcreds -regcred",
        "delete secret team-a-dev/regcred (dockerhub)",
    ]
    after = apply_plan(view, the_plan)
    assert after.service_accounts[NS]["default"].image_pull_secrets == ("pullcreds",)
    assert run_plan(cfg, after).actions == ()


def test_our_reference_to_a_secret_that_is_gone_and_no_longer_wanted_is_dropped() -> None:
    # secretName changed while someone had already deleted the old Secret
    cfg = make_config(make_mapping(names=(NS,), secret_name="pullcreds"))
    view = make_view([ns(NS)], [], [sa(pulls=("corp", "regcred"), ours=("regcred",))])
    assert lines(run_plan(cfg, view)) == [
        "create secret team-a-dev/pullcreds (dockerhub)",
        "patch serviceaccount team-a-dev/default +pullcreds -regcred",
    ]
    # with pruning off, references of ours are left as they are
    keep = make_config(make_mapping(names=(NS,), secret_name="pullcreds"), prune=False)
    assert lines(run_plan(keep, view)) == [
        "create secret team-a-dev/pullcreds (dockerhub)",
        "patch serviceaccount team-a-dev/default +pullcreds",
    ]


def test_our_dangling_reference_is_removed_when_namespace_stopped_matching_and_secret_is_gone(
) -> None:
    cfg = make_config(make_mapping(names=("elsewhere",)))
    view = make_view([ns(NS)], [], [sa(pulls=("corp", "regcred"), ours=("regcred",))])
    assert lines(run_plan(cfg, view)) == ["unpatch serviceaccount team-a-dev/default -regcred"]


def test_managed_secret_in_a_terminating_or_vanished_namespace_is_untouched() -> None:
    cfg = make_config(make_mapping(names=("gone", "closing", NS)))
    view = make_view(
        [ns("closing", terminating=True), ns("left")],
        [managed_secret("closing"), managed_secret("gone"), managed_secret("left")],
        [sa("closing"), sa("gone"), sa("left", pulls=("regcred",), ours=("regcred",))],
    )
    # "left" is selected by nothing: pruned; "closing" and "gone" get no writes at all
    assert lines(run_plan(cfg, view)) == [
        "unpatch serviceaccount left/default -regcred",
        "delete secret left/regcred (dockerhub)",
    ]


# --- repairing edits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        {"data_keys": (KEY, "extra")},
        {"data": b'{"auths":{"evil.example":{"auth":"eDp5"}}}'},
        {"data": None, "data_keys": ()},
        {"annotations": {model.MAPPING_ANNOTATION: "someone-else",
                         model.CREDENTIALS_ANNOTATION: "dockerhub"}},
        {"annotations": {model.MAPPING_ANNOTATION: "team-a",
                         model.CREDENTIALS_ANNOTATION: "dockerhub,ghcr"}},
        {"annotations": {}},
    ],
    ids=["extra-data-key", "data-edited", "data-removed", "mapping-annotation-changed",
         "credentials-annotation-changed", "annotations-removed"],
)
def test_edited_managed_secret_is_rewritten(edit: dict[str, Any]) -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    good = written_secret(cfg, "team-a", rv="77")
    fields: dict[str, Any] = ({} if "data" in edit else {"digest": good.digest}) | {
        "data_keys": good.data_keys} | edit
    edited = managed_secret(rv="77", **fields)
    the_plan = run_plan(cfg, make_view([ns(NS)], [edited],
                                       [sa(pulls=("regcred",), ours=("regcred",))]))
    assert lines(the_plan) == ["update secret team-a-dev/regcred (dockerhub)"]
    (update,) = the_plan.actions
    assert update.resource_version == "77"
    assert model.digest(update.content.data) == good.digest
    assert set(update.drop_keys) - {KEY} == set(edited.data_keys) - {KEY}


def test_extra_data_key_is_listed_for_removal() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    good = written_secret(cfg, "team-a")
    edited = managed_secret(digest=good.digest, data_keys=(KEY, "extra"))
    (update,) = run_plan(cfg, make_view([ns(NS)], [edited])).actions
    assert "extra" in update.drop_keys


def test_foreign_labels_and_annotations_on_a_managed_secret_cause_no_write() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    good = written_secret(cfg, "team-a")
    decorated = managed_secret(
        digest=good.digest,
        labels={model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE, "team": "a"},
        annotations={**good.annotations, "pullsecret-syncer.io/note": "x"},
    )
    view = make_view([ns(NS)], [decorated], [sa(pulls=("regcred",), ours=("regcred",))])
    assert run_plan(cfg, view).actions == ()


# --- scope ---------------------------------------------------------------------------------------


def test_per_namespace_pass_only_touches_namespaces_in_scope() -> None:
    cfg = make_config(make_mapping(patterns=("team-a-*",)))
    view = make_view(
        [ns(NS), ns("team-a-prod"), ns("old")],
        [managed_secret("old")],
        [sa(), sa("team-a-prod"), sa("old", pulls=("regcred",), ours=("regcred",))],
    )
    assert lines(run_plan(cfg, view, scope=["team-a-prod"])) == [
        "create secret team-a-prod/regcred (dockerhub)",
        "patch serviceaccount team-a-prod/default +regcred",
    ]
    assert lines(run_plan(cfg, view, scope=["old"])) == [
        "unpatch serviceaccount old/default -regcred",
        "delete secret old/regcred (dockerhub)",
    ]
    assert len(run_plan(cfg, view).actions) == 6


# --- service_account_change, as the JSON patch the client sends -----------------------------------


def test_patch_first_tests_the_resource_version() -> None:
    ops = patch_ops(sa(rv="42"), add=("regcred",), remove=())
    assert ops is not None
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}


def test_patch_keeps_foreign_entries_in_order_and_appends_ours() -> None:
    account = sa(pulls=("zeta", "alpha"), ours=(), has_annotations=True)
    ops = patch_ops(account, add=("regcred", "mirror"), remove=())
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/imagePullSecrets",
         "value": [{"name": "zeta"}, {"name": "alpha"}, {"name": "regcred"}, {"name": "mirror"}]},
        {"op": "add", "path": "/metadata/annotations/pullsecret-syncer.io~1image-pull-secrets",
         "value": "regcred,mirror"},
    ]


def test_patch_removes_only_names_we_recorded() -> None:
    account = sa(pulls=("corp", "regcred", "other"), ours=("regcred",))
    ops = patch_ops(account, add=(), remove=("regcred", "corp"))
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/imagePullSecrets", "value": [{"name": "corp"}, {"name": "other"}]},
        {"op": "remove",
         "path": "/metadata/annotations/pullsecret-syncer.io~1image-pull-secrets"},
    ]


def test_patch_keeps_remaining_names_of_ours_in_the_annotation() -> None:
    account = sa(pulls=("regcred", "mirror"), ours=("regcred", "mirror"))
    ops = patch_ops(account, add=(), remove=("regcred",))
    assert ops is not None
    assert ops[-1] == {
        "op": "add", "path": "/metadata/annotations/pullsecret-syncer.io~1image-pull-secrets",
        "value": "mirror",
    }


def test_patch_only_clears_the_annotation_when_our_entry_is_already_gone() -> None:
    account = sa(pulls=("corp",), ours=("regcred",))
    ops = patch_ops(account, add=(), remove=("regcred",))
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "remove",
         "path": "/metadata/annotations/pullsecret-syncer.io~1image-pull-secrets"},
    ]


def test_patch_adds_the_whole_annotations_map_when_the_account_has_none() -> None:
    ops = patch_ops(sa(has_annotations=False), add=("regcred",), remove=())
    assert ops is not None
    assert ops[-1] == {"op": "add", "path": "/metadata/annotations",
                       "value": {model.SA_ANNOTATION: "regcred"}}


def test_patch_only_records_the_name_when_re_adding_our_lost_entry() -> None:
    account = sa(pulls=("corp",), ours=("regcred",))
    ops = patch_ops(account, add=("regcred",), remove=())
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/imagePullSecrets",
         "value": [{"name": "corp"}, {"name": "regcred"}]},
    ]


@pytest.mark.parametrize(
    ("account", "add", "remove"),
    [
        (sa(pulls=("regcred",), ours=("regcred",)), ("regcred",), ()),
        (sa(pulls=("regcred",), ours=()), ("regcred",), ()),  # someone else's entry
        (sa(pulls=("corp",), ours=()), (), ("corp",)),  # not ours to remove
        (sa(), (), ()),
    ],
    ids=["already-ours", "already-theirs", "foreign-remove", "empty"],
)
def test_patch_is_none_when_nothing_changes(
    account: model.ServiceAccount, add: tuple[str, ...], remove: tuple[str, ...]
) -> None:
    assert patch_ops(account, add=add, remove=remove) is None


def test_patch_applied_to_a_real_service_account_adds_then_removes_only_ours() -> None:
    original = {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": NS, "resourceVersion": "42", "uid": "u-1",
                     "annotations": {"kubernetes.io/description": "keep me"}},
        "secrets": [{"name": "default-token-x1"}],
        "imagePullSecrets": [{"name": "corp-mirror"}],
    }
    ops = patch_ops(sa_from_object(original), add=("regcred",), remove=())
    patched = jsonpatch.apply_patch(original, ops)
    expected = copy.deepcopy(original)
    expected["imagePullSecrets"] = [{"name": "corp-mirror"}, {"name": "regcred"}]
    expected["metadata"]["annotations"][model.SA_ANNOTATION] = "regcred"
    assert patched == expected

    patched["metadata"]["resourceVersion"] = "43"
    patched["imagePullSecrets"].insert(0, {"name": "later-added"})  # someone else, meanwhile
    ops = patch_ops(sa_from_object(patched), add=(),
                                     remove=("regcred", "corp-mirror"))
    restored = jsonpatch.apply_patch(patched, ops)
    assert restored["imagePullSecrets"] == [{"name": "later-added"}, {"name": "corp-mirror"}]
    assert restored["metadata"]["annotations"] == {"kubernetes.io/description": "keep me"}
    assert restored["secrets"] == original["secrets"]


def test_patch_applied_to_a_bare_service_account_creates_list_and_annotations() -> None:
    bare = {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": NS, "resourceVersion": "9"}}
    ops = patch_ops(sa_from_object(bare), add=("regcred",), remove=())
    patched = jsonpatch.apply_patch(bare, ops)
    assert patched["imagePullSecrets"] == [{"name": "regcred"}]
    assert patched["metadata"]["annotations"] == {model.SA_ANNOTATION: "regcred"}


def test_patch_fails_against_a_service_account_changed_since_it_was_read() -> None:
    account = sa(pulls=("corp",), rv="42")
    ops = patch_ops(account, add=("regcred",), remove=())
    newer = sa_object(sa(pulls=("corp", "someone-elses"), rv="43"))
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(newer, ops)


# --- action output (docs/operations.md) -----------------------------------------------------------


def content(credentials: tuple[str, ...]) -> model.SecretContent:
    return model.SecretContent(NS, "regcred", "team-a", credentials, SENTINEL.encode())


@pytest.mark.parametrize(
    ("action", "line"),
    [
        (plan.CreateSecret(content(("dockerhub", "ghcr"))),
         "create secret team-a-dev/regcred (dockerhub, ghcr)"),
        (plan.UpdateSecret(content(("dockerhub",)), "1"),
         "update secret team-a-dev/regcred (dockerhub)"),
        (plan.DeleteSecret(NS, "regcred", "1", credentials=("ghcr",)),
         "delete secret team-a-dev/regcred (ghcr)"),
        (plan.UpdateSecret(content(("dockerhub",)), "1", adopt=True),
         "adopt secret team-a-dev/regcred (dockerhub)"),
        (plan.ReplaceSecret(content(("dockerhub",)), "1", "type", observed_uid="uid-1"),
         "replace secret team-a-dev/regcred (dockerhub)"),
        (plan.PatchServiceAccount(NS, "default", "7", add=("regcred",)),
         "patch serviceaccount team-a-dev/default +regcred"),
        (plan.PatchServiceAccount(NS, "default", "7", remove=("regcred",)),
         "unpatch serviceaccount team-a-dev/default -regcred"),
    ],
)
def test_describe_prints_the_spec_line(action: plan.Action, line: str) -> None:
    assert render.describe(action) == line


def test_json_output_has_the_spec_keys() -> None:
    actions = (
        plan.CreateSecret(content(("dockerhub", "ghcr"))),
        plan.PatchServiceAccount(NS, "default", "7", add=("regcred",)),
    )
    assert json.loads(render.to_json(actions)) == [
        {"action": "create", "kind": "secret", "namespace": NS, "name": "regcred",
         "credentials": ["dockerhub", "ghcr"]},
        {"action": "patch", "kind": "serviceaccount", "namespace": NS, "name": "default",
         "credentials": []},
    ]


# --- Secrets that cannot change in place (docs/configuration.md) ----------------------------------


def test_managed_secret_of_another_type_is_replaced_not_updated() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    good = written_secret(cfg, "team-a", rv="12")
    wrong = dataclasses.replace(good, type="Opaque", uid="uid-old")
    (replace,) = run_plan(cfg, make_view([ns(NS)], [wrong])).actions
    assert isinstance(replace, plan.ReplaceSecret)
    assert (replace.why, replace.resource_version, replace.observed_uid) == (
        "type", "12", "uid-old")
    assert model.digest(replace.content.data) == good.digest


def test_immutable_managed_secret_is_replaced_when_its_data_must_change() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    stale = dataclasses.replace(managed_secret(rv="12"), immutable=True)
    (replace,) = run_plan(cfg, make_view([ns(NS)], [stale])).actions
    assert isinstance(replace, plan.ReplaceSecret)
    assert replace.why == "immutable"


def test_immutable_managed_secret_with_the_right_data_is_updated_in_place() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    good = written_secret(cfg, "team-a", rv="12")
    relabelled = dataclasses.replace(good, immutable=True,
                                     annotations={model.MAPPING_ANNOTATION: "team-a"})
    (update,) = run_plan(cfg, make_view([ns(NS)], [relabelled])).actions
    assert isinstance(update, plan.UpdateSecret)  # metadata of an immutable Secret may change


def test_immutable_managed_secret_in_sync_causes_no_write() -> None:
    cfg = make_config(make_mapping(names=(NS,)))
    good = dataclasses.replace(written_secret(cfg, "team-a"), immutable=True)
    assert run_plan(cfg, make_view([ns(NS)], [good],
                                   [sa(pulls=("regcred",), ours=("regcred",))])).actions == ()


def test_every_action_carries_the_object_the_pass_observed() -> None:
    cfg = make_config(make_mapping(names=(NS,), credentials=("dockerhub",)))
    stale = dataclasses.replace(managed_secret(data=b"old"), uid="uid-secret")
    gone = dataclasses.replace(managed_secret(name="old", mapping="gone"), uid="uid-old")
    account = dataclasses.replace(sa(), uid="uid-sa")
    the_plan = run_plan(cfg, make_view([ns(NS)], [stale, gone], [account]))
    assert [(a.verb, a.kind, a.namespace, a.name, a.mapping, a.credentials, a.observed_uid)
            for a in the_plan.actions] == [
        ("update", "secret", NS, "regcred", "team-a", ("dockerhub",), "uid-secret"),
        ("patch", "serviceaccount", NS, "default", None, (), "uid-sa"),
        ("delete", "secret", NS, "old", "gone", ("dockerhub",), "uid-old")]
    patch = the_plan.actions[1]
    assert isinstance(patch, plan.PatchServiceAccount) and patch.observed == account


def test_plans_never_show_secret_data() -> None:
    cfg = make_config(make_mapping(names=(NS,), credentials=("dockerhub", "ghcr")))
    the_plan = run_plan(cfg, make_view([ns(NS)], accounts=[sa()]))
    first = the_plan.actions[0]
    assert isinstance(first, plan.CreateSecret)
    assert SENTINEL.encode() in first.content.data
    shown = [repr(the_plan), render.to_json(the_plan.actions), *lines(the_plan)]
    for text in shown:
        assert "SENTINEL" not in text
        assert "auths" not in text
