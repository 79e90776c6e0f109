"""The `cluster` fixture of the contract suite: every case runs on `FakeCluster` and on the real
apiserver of tests/stack through `syncer.kube.client`, so the fake cannot drift from it.

Each implementation comes with a `World` that sets the scene the way another writer or a
controller would (namespaces, foreign Secrets, a terminating namespace) — outside the API under
test, and uncounted. (`410 Gone` is not in the contract: on 1.37 even a physical etcd compaction
did not make the apiserver refuse a watch from an old version; the real-stack test of the
informer's re-list injects the 410 with the fault proxy, and the fake's `compact()` serves the
unit tests.)
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from syncer.core import model, settings
from syncer.kube import client as kube_client
from syncer.kube import fake
from tests.stack import workloads

HOLD = "pss.test/hold"  # a finalizer that keeps a namespace Terminating until removed


class FakeWorld:
    def __init__(self) -> None:
        self.cluster = fake.FakeCluster()
        self._apps: dict[tuple[str, str], list[str]] = {}  # images: container, then init
        self._pods: dict[tuple[str, str], list[str]] = {}

    def namespace(self, *, labels: dict[str, str] | None = None) -> str:
        name = f"c-{uuid.uuid4().hex[:8]}"
        self.cluster.add_namespace(name, labels=labels)
        return name

    def service_account(self, ns: str, name: str = "default", *,
                        pulls: tuple[str, ...] = ()) -> None:
        self.cluster.put_service_account(ns, name, image_pull_secrets=pulls)

    def foreign_edit_service_account(self, ns: str, name: str, pulls: tuple[str, ...], *,
                                     manager: str = "kubectl") -> None:
        old = self.cluster.stored("serviceaccounts", ns, name)
        self.cluster.put_service_account(ns, name, image_pull_secrets=pulls, manager=manager,
                                         ours=old.ours if old is not None else ())

    def foreign_secret(self, ns: str, name: str, *, type_: str = "Opaque",
                       immutable: bool = False, managed: bool = False) -> None:
        labels = {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE} if managed else {}
        self.cluster.put_secret(model.Secret(
            namespace=ns, name=name, managed=managed, type=type_, digest=model.digest(b"{}"),
            data_keys=(model.DOCKERCONFIG_KEY,), labels=labels, annotations={},
            resource_version="", immutable=immutable))

    def terminate(self, ns: str) -> None:
        self.cluster.terminate_namespace(ns)

    def events(self, name: str) -> list[str]:
        return [reason for ref, reason, _ in self.cluster.events if ref.name == name]

    # ---- Pods: the fake plays the ReplicaSet controller and the kubelet ----------------------
    def deployment(self, ns: str, app: str, *, image: str) -> None:
        self._apps[(ns, app)] = [image]
        self.replacement(ns, app, instead_of="")

    def bare_pod(self, ns: str, name: str, *, image: str, init_image: str | None = None,
                 pull_secrets: tuple[str, ...] = ()) -> None:
        self._apps[(ns, name)] = [image, *([init_image] if init_image else [])]
        self.cluster.add_pod(ns, name, controller=False, image_pull_secrets=pull_secrets or None)
        self._pods[(ns, name)] = [name]

    def pods(self, ns: str, app: str) -> list[str]:
        return [n for n in self._pods.get((ns, app), [])
                if self.cluster.stored("pods", ns, n) is not None]

    def replacement(self, ns: str, app: str, *, instead_of: str) -> str:
        """The ReplicaSet controller's new Pod for `app` (admitted with the SA's secrets)."""
        name = f"{app}-{uuid.uuid4().hex[:5]}"
        self.cluster.add_pod(ns, name)
        self._pods.setdefault((ns, app), []).append(name)
        return name

    def kubelet(self, ns: str, pod: str, *, reason: str = "ImagePullBackOff",
                phase: str = "Pending", init: bool = False) -> None:
        app = next(a for (n, a), names in self._pods.items() if n == ns and pod in names)
        images = self._apps[(ns, app)]
        image = images[-1] if init else images[0]
        waiting = ((image, reason),) if phase == "Pending" else ()
        self.cluster.set_pod_status(ns, pod, phase=phase, waiting=waiting)

    def budget(self, ns: str, app: str) -> None:
        for name in self.pods(ns, app):
            self.cluster.protect_pod(ns, name)

    def close(self) -> None:
        return


class RealWorld:
    def __init__(self, kube: Any) -> None:
        from kubernetes import client as k8s

        self._k8s = k8s
        self.core = kube.core()
        self.cluster = kube_client.connect(settings.KubeSettings(kubeconfig=str(kube.kubeconfig)))
        self._made: list[str] = []

    def namespace(self, *, labels: dict[str, str] | None = None) -> str:
        name = f"c-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace(self._k8s.V1Namespace(
            metadata=self._k8s.V1ObjectMeta(name=name, labels=labels)))
        self._made.append(name)
        return name

    def service_account(self, ns: str, name: str = "default", *,
                        pulls: tuple[str, ...] = ()) -> None:
        body = self._k8s.V1ServiceAccount(
            metadata=self._k8s.V1ObjectMeta(name=name),
            image_pull_secrets=[{"name": n} for n in pulls] or None)
        try:
            self.core.create_namespaced_service_account(ns, body)
        except self._k8s.exceptions.ApiException as exc:
            if exc.status != 409:  # `default` comes from the controller-manager
                raise
            self.foreign_edit_service_account(ns, name, pulls)

    def foreign_edit_service_account(self, ns: str, name: str, pulls: tuple[str, ...], *,
                                     manager: str = "kubectl") -> None:
        self.core.patch_namespaced_service_account(
            name, ns, {"imagePullSecrets": [{"name": n} for n in pulls] or None},
            field_manager=manager)

    def foreign_secret(self, ns: str, name: str, *, type_: str = "Opaque",
                       immutable: bool = False, managed: bool = False) -> None:
        labels = {model.MANAGED_BY_LABEL: model.MANAGED_BY_VALUE} if managed else None
        self.core.create_namespaced_secret(ns, self._k8s.V1Secret(
            metadata=self._k8s.V1ObjectMeta(name=name, labels=labels), type=type_,
            immutable=immutable or None,
            data={model.DOCKERCONFIG_KEY: base64.b64encode(b'{"auths":{}}').decode()}))

    def terminate(self, ns: str) -> None:
        self.core.create_namespaced_config_map(ns, self._k8s.V1ConfigMap(
            metadata=self._k8s.V1ObjectMeta(name="hold", finalizers=[HOLD])))
        self.core.delete_namespace(ns)
        deadline = time.monotonic() + 30
        while self.core.read_namespace(ns).status.phase != "Terminating":
            assert time.monotonic() < deadline, f"namespace {ns} never started terminating"
            time.sleep(0.1)

    def events(self, name: str) -> list[str]:
        found = self.core.list_event_for_all_namespaces(
            field_selector=f"involvedObject.name={name}")
        return [e.reason for e in found.items]

    # ---- Pods: the controller-manager's controllers; the test plays the kubelet --------------
    def deployment(self, ns: str, app: str, *, image: str) -> None:
        workloads.deployment(self.core, ns, app, image=image)
        workloads.wait_pods(self.core, ns, app, 1)

    def bare_pod(self, ns: str, name: str, *, image: str, init_image: str | None = None,
                 pull_secrets: tuple[str, ...] = ()) -> None:
        workloads.bare_pod(self.core, ns, name, image=image, init_image=init_image,
                           pull_secrets=pull_secrets)

    def pods(self, ns: str, app: str) -> list[str]:
        return [p.metadata.name for p in workloads.pods(self.core, ns, app)]

    def replacement(self, ns: str, app: str, *, instead_of: str) -> str:
        new = workloads.wait_pods(self.core, ns, app, 1, exclude=frozenset({instead_of}))
        return str(new[0].metadata.name)

    def kubelet(self, ns: str, pod: str, *, reason: str = "ImagePullBackOff",
                phase: str = "Pending", init: bool = False) -> None:
        workloads.kubelet(self.core, ns, pod, reason=reason, phase=phase, init=init)

    def budget(self, ns: str, app: str) -> None:
        workloads.budget(self.core, ns, app)

    def close(self) -> None:
        for ns in self._made:
            try:
                if self.core.read_namespace(ns).status.phase == "Terminating":
                    self.core.patch_namespaced_config_map("hold", ns,
                                                          {"metadata": {"finalizers": None}})
                self.core.delete_namespace(ns)
            except self._k8s.exceptions.ApiException as exc:
                if exc.status not in (404, 409):
                    raise
        self.cluster.close()
        self.core.api_client.close()


@pytest.fixture(params=["fake", "real"])
def world(request: pytest.FixtureRequest) -> Iterator[FakeWorld | RealWorld]:
    w: FakeWorld | RealWorld
    w = FakeWorld() if request.param == "fake" else RealWorld(request.getfixturevalue("kube"))
    yield w
    w.close()
