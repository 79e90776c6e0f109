"""Which Pending Pods to evict so that they come back with our Secret (docs/recycle-pods.md). Pure.

The ServiceAccount admission plugin copies a ServiceAccount's `imagePullSecrets` into a Pod only
when the Pod is created, and a Pod's `imagePullSecrets` never change afterwards: a Pod created in
the moment before our patch landed stays in `ImagePullBackOff` for good. `decide` picks the Pods
for which an eviction helps — all of these hold:

- a container or init container waits with `ErrImagePull` or `ImagePullBackOff` (not
  `ContainerCreating`, `ErrImageNeverPull`, `InvalidImageName`: no Secret helps those) for an image
  that one of the mapping's credentials covers, by the kubelet's keyring rules (`keyring`);
- the Pod's `imagePullSecrets` lack the mapping's Secret, the Secret exists (ours), and the Pod's
  ServiceAccount lists it now;
- the Pod is Pending and not already terminating;
- it has a controller owner reference (it will be recreated, now with the Secret), and it got its
  `imagePullSecrets` from the ServiceAccount — every entry it has is also the ServiceAccount's —
  for a Pod whose template names its own would come back without ours again;
- its controller is not a Job: the Job controller counts an evicted Pod as a failed one against
  the Job's `backoffLimit` (a Job with `backoffLimit: 0` would fail outright), and we cannot see
  how much of it is left without reading Jobs.

A Pod without a controller is never evicted; like one whose template names its own secrets, or
one of a Job, it gets a Warning Event (`MissingSecret`, reported as `PullSecretMissing`) instead.

A decision to evict is an `EvictPod`, an action of the same shape as a plan's (`plan.BaseAction`):
`plan` lists it and `sync` reports it with the Secret writes. `syncer.reconcile.evict` carries the
decisions out, `syncer.run.recycler` makes them in the daemon.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from syncer import config
from syncer.core import dockerconfig, keyring, model
from syncer.decide import desired, plan

STUCK = frozenset({"ErrImagePull", "ImagePullBackOff"})
EVENT_REASON = "PullSecretMissing"


@dataclass(frozen=True, slots=True)
class Recyclable:
    """The Secret of a mapping with `recyclePods` in one namespace, and what it covers."""

    namespace: str
    secret_name: str
    mapping: str
    credentials: tuple[str, ...]
    registries: tuple[str, ...]  # the `auths` keys of the mapping's credentials with a value


@dataclass(frozen=True, slots=True)
class Scene:
    """Everything a decision looks at besides the Pod itself."""

    targets: Mapping[str, tuple[Recyclable, ...]]  # namespace -> Secrets that recycle
    service_accounts: Mapping[str, Mapping[str, model.ServiceAccount]]
    secrets: frozenset[tuple[str, str]]  # (namespace, name) of our Secrets that exist


@dataclass(frozen=True, slots=True)
class EvictPod(plan.BaseAction):
    """Evict a Pod stuck pulling without the mapping's Secret, so its controller recreates it
    with the Secret. Only the Pod of `observed_uid` (the eviction's precondition)."""

    secret_name: str
    mapping: str = field(default="", kw_only=True)
    kind: ClassVar[str] = "pod"
    VERB: ClassVar[str] = "evict"
    evicts: ClassVar[bool] = True

    def _detail(self) -> str:
        return f" ({self.mapping})"


@dataclass(frozen=True, slots=True)
class MissingSecret:
    """A stuck Pod we will not evict: reported with a Warning Event instead."""

    namespace: str
    name: str
    uid: str
    mapping: str
    secret_name: str
    service_account: str
    why: Literal["no-controller", "own-pull-secrets", "job"]
    evicts: ClassVar[bool] = False


Decision = EvictPod | MissingSecret | None


def enabled(cfg: config.Config) -> bool:
    """Whether some mapping recycles Pods (only then are Pods watched at all)."""
    return any(m.recycle_pods for m in cfg.mappings)


def registries(mapping: config.MappingSpec,
               credentials: Mapping[str, dockerconfig.Auths]) -> tuple[str, ...]:
    """The registry keys a mapping's Secret holds, as far as its credentials have a value."""
    keys = {key for name in mapping.credentials for key in credentials.get(name, {})}
    return tuple(sorted(keys))


def scene(cfg: config.Config, credentials: Mapping[str, dockerconfig.Auths],
          view: model.ClusterView, *, scope: Iterable[str] | None = None) -> Scene:
    """The recycling Secrets of every (or every `scope`) namespace, from the desired state."""
    recycling = {m.name: m for m in cfg.mappings if m.recycle_pods}
    targets: dict[str, list[Recyclable]] = {}
    if recycling:
        want = desired.compute(cfg, credentials, view.namespaces.values(), scope=scope)
        keys = {name: registries(m, credentials) for name, m in recycling.items()}
        for (ns, name), target in sorted(want.targets.items()):
            if target.mapping in recycling:
                targets.setdefault(ns, []).append(Recyclable(
                    ns, name, target.mapping, target.credentials, keys[target.mapping]))
    ours = frozenset(key for key, s in view.secrets.items()
                     if model.owned_by(s, cfg.instance))
    return Scene({ns: tuple(ts) for ns, ts in targets.items()}, view.service_accounts, ours)


def pulling(pod: model.Pod) -> bool:
    """Whether some container of `pod` waits after a failed image pull (no registry asked)."""
    return any(reason in STUCK for _, reason in pod.waiting)


def stuck_on(pod: model.Pod, registry_keys: Iterable[str]) -> bool:
    """Whether a container of `pod` waits to pull an image these registry keys cover."""
    keys = tuple(registry_keys)
    return any(reason in STUCK and keyring.covers(keys, image) for image, reason in pod.waiting)


def decide(pod: model.Pod, where: Scene) -> Decision:
    """Evict, warn (`MissingSecret`) or leave alone (None); see the module docstring."""
    if pod.phase != "Pending" or pod.terminating or not pod.waiting:
        return None
    sa = where.service_accounts.get(pod.namespace, {}).get(pod.service_account)
    for target in where.targets.get(pod.namespace, ()):
        if (target.secret_name in pod.image_pull_secrets
                or (pod.namespace, target.secret_name) not in where.secrets
                or sa is None or target.secret_name not in sa.image_pull_secrets
                or not stuck_on(pod, target.registries)):
            continue
        why: Literal["no-controller", "own-pull-secrets", "job"] | None = None
        if not pod.has_controller:
            why = "no-controller"
        elif not set(pod.image_pull_secrets) <= set(sa.image_pull_secrets):
            why = "own-pull-secrets"
        elif pod.controller_kind == "Job":
            why = "job"
        if why is not None:
            return MissingSecret(pod.namespace, pod.name, pod.uid, target.mapping,
                                 target.secret_name, pod.service_account, why)
        return EvictPod(pod.namespace, pod.name, secret_name=target.secret_name,
                        mapping=target.mapping, credentials=target.credentials,
                        observed_uid=pod.uid)
    return None


def decide_all(pods: Iterable[model.Pod], where: Scene) -> list[EvictPod | MissingSecret]:
    """The decisions about `pods` that are not "leave alone", in (namespace, name) order."""
    found = (decide(pod, where) for pod in sorted(pods, key=lambda p: (p.namespace, p.name)))
    return [d for d in found if d is not None]


def project(view: model.ClusterView, actions: Iterable[plan.Action]) -> model.ClusterView:
    """The view as it is after `actions` (for `plan`, and for `sync` after its writes): Secrets
    created or updated exist, deleted ones do not, ServiceAccounts list what was added."""
    secrets = dict(view.secrets)
    accounts = {ns: dict(sas) for ns, sas in view.service_accounts.items()}
    for action in actions:
        match action:
            case plan.PatchServiceAccount():
                sa = accounts.get(action.namespace, {}).get(action.name)
                if sa is not None:
                    names = [n for n in sa.image_pull_secrets if n not in action.remove]
                    names += [n for n in action.add if n not in names]
                    accounts[action.namespace][action.name] = model.ServiceAccount(
                        sa.namespace, sa.name, tuple(names), sa.ours, sa.resource_version,
                        sa.uid, sa.has_annotations)
            case plan.SecretWrite():
                secrets[(action.namespace, action.name)] = model.Secret(
                    namespace=action.namespace, name=action.name, managed=True,
                    type=model.SECRET_TYPE, digest=model.digest(action.content.data),
                    data_keys=(model.DOCKERCONFIG_KEY,), labels={}, annotations={},
                    resource_version="")
            case plan.DeleteSecret() | plan.ReleaseSecret():
                secrets.pop((action.namespace, action.name), None)
    return model.ClusterView(view.namespaces, secrets, accounts)
