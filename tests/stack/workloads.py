"""Workloads on the real apiserver, for the Pod recycling tests: Deployments (the
controller-manager's deployment and replicaset controllers own their Pods), bare Pods,
PodDisruptionBudgets — and the kubelet's part, which no process plays here: tests write Pod
status through the status subresource (`PUT …/pods/NAME/status`), e.g. a container waiting in
`ImagePullBackOff`.

Pods are never scheduled (no scheduler runs), so an evicted Pod is deleted at once.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

APP_LABEL = "pss-test/app"


def _spec(image: str, *, init_image: str | None, pull_secrets: tuple[str, ...]) -> Any:
    return k8s.V1PodSpec(
        containers=[k8s.V1Container(name="app", image=image)],
        init_containers=[k8s.V1Container(name="init", image=init_image)] if init_image else None,
        image_pull_secrets=[k8s.V1LocalObjectReference(name=n) for n in pull_secrets] or None,
        automount_service_account_token=False, termination_grace_period_seconds=0)


def wait_service_account(core: Any, ns: str, name: str = "default", timeout: float = 30) -> None:
    """The ServiceAccount admission plugin refuses Pods until their account exists."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            core.read_namespaced_service_account(name, ns)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def deployment(core: Any, ns: str, name: str, *, image: str, replicas: int = 1,
               init_image: str | None = None, pull_secrets: tuple[str, ...] = ()) -> None:
    labels = {APP_LABEL: name}
    k8s.AppsV1Api(core.api_client).create_namespaced_deployment(ns, k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas, selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=_spec(image, init_image=init_image, pull_secrets=pull_secrets)))))


def bare_pod(core: Any, ns: str, name: str, *, image: str, init_image: str | None = None,
             pull_secrets: tuple[str, ...] = (), app: str | None = None) -> None:
    wait_service_account(core, ns)
    core.create_namespaced_pod(ns, k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, labels={APP_LABEL: app or name}),
        spec=_spec(image, init_image=init_image, pull_secrets=pull_secrets)))


def pods(core: Any, ns: str, app: str) -> list[Any]:
    """The live (not terminating) Pods of `app`, oldest first."""
    found = core.list_namespaced_pod(ns, label_selector=f"{APP_LABEL}={app}").items
    live = [p for p in found if p.metadata.deletion_timestamp is None]
    return sorted(live, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))


def wait_pods(core: Any, ns: str, app: str, count: int, *, timeout: float = 60,
              exclude: frozenset[str] = frozenset()) -> list[Any]:
    """Wait until `app` has `count` live Pods (not named in `exclude`); returns them."""
    deadline = time.monotonic() + timeout
    while True:
        live = [p for p in pods(core, ns, app) if p.metadata.name not in exclude]
        if len(live) >= count:
            return live
        if time.monotonic() > deadline:
            raise AssertionError(f"{ns}/{app}: {len(live)} of {count} Pods after {timeout}s")
        time.sleep(0.1)


def kubelet(core: Any, ns: str, name: str, *, reason: str = "ImagePullBackOff",
            phase: str = "Pending", init: bool = False) -> Any:
    """Write the status the kubelet would: with phase Pending, the app container (or, with
    `init`, the init container) waits with `reason`; with phase Running, every container runs
    and the Pod is Ready. Returns the Pod as written."""
    pod = core.read_namespaced_pod(name, ns)
    running = phase == "Running"

    def status_of(container: Any, *, waits: bool) -> Any:
        state = (k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(
            reason=reason, message="Back-off pulling image (written by a test)")) if waits
            else k8s.V1ContainerState(running=k8s.V1ContainerStateRunning()))
        return k8s.V1ContainerStatus(name=container.name, image=container.image, image_id="",
                                     ready=running, restart_count=0, state=state)

    inits = pod.spec.init_containers or []
    pod.status.phase = phase
    pod.status.init_container_statuses = [status_of(c, waits=init and not running)
                                          for c in inits] or None
    pod.status.container_statuses = [status_of(c, waits=not running and not init)
                                     for c in pod.spec.containers]
    pod.status.conditions = [k8s.V1PodCondition(type="Ready",
                                                status="True" if running else "False")]
    return core.replace_namespaced_pod_status(name, ns, pod)


def budget(core: Any, ns: str, app: str) -> None:
    """A PodDisruptionBudget with `maxUnavailable: 0` over the Pods of `app`."""
    k8s.PolicyV1Api(core.api_client).create_namespaced_pod_disruption_budget(
        ns, k8s.V1PodDisruptionBudget(
            metadata=k8s.V1ObjectMeta(name=f"{app}-pdb"),
            spec=k8s.V1PodDisruptionBudgetSpec(
                max_unavailable=0,
                selector=k8s.V1LabelSelector(match_labels={APP_LABEL: app}))))


def exists(core: Any, ns: str, name: str) -> bool:
    try:
        pod = core.read_namespaced_pod(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return pod.metadata.deletion_timestamp is None
