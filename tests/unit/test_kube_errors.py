"""API errors become our own error tree, and write errors never quote object data."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from syncer.kube import errors as kube
from syncer.kube.client.translate import translate


def api_error(status: int, reason: str, message: str, fields: tuple[str, ...] = ()) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "reason": reason, "message": message, "code": status,
                           "details": {"causes": [{"field": f} for f in fields]}})
    return exc


@pytest.mark.parametrize(("status", "reason", "message", "expected"), [
    (404, "NotFound", 'secrets "x" not found', kube.NotFound),
    (409, "AlreadyExists", 'secrets "x" already exists', kube.AlreadyExists),
    (409, "Conflict", "the object has been modified", kube.Conflict),
    (422, "Invalid", "testing value /metadata/resourceVersion failed", kube.Conflict),
    (422, "Invalid", "the server rejected our request due to an error in our request",
     kube.Conflict),
    (422, "Invalid", "data: Too long: must have at most 1048576 bytes", kube.Invalid),
    (410, "Expired", "too old resource version", kube.Gone),
    (403, "Forbidden", 'unable to create new content in namespace x because it is being '
     'terminated', kube.NamespaceTerminating),
    (403, "Forbidden", "serviceaccounts is forbidden", kube.Forbidden),
    (429, "TooManyRequests", "slow down", kube.Retryable),
    # Kubernetes 1.37 pkg/registry/core/pod/storage/eviction.go: a budget refuses an eviction.
    (429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
     kube.TooManyRequests),
    (403, "Forbidden", 'poddisruptionbudgets.policy "pdb" is forbidden: pdb disruptions allowed '
     "is negative", kube.TooManyRequests),
    (403, "Forbidden", 'pods "x" is forbidden: User "u" cannot create resource "pods/eviction"',
     kube.Forbidden),
    (503, "ServiceUnavailable", "", kube.Retryable),
])
def test_status_codes_map_to_our_errors(status: int, reason: str, message: str,
                                        expected: type[kube.KubeError]) -> None:
    err = translate(api_error(status, reason, message), "PATCH secrets ns/x")
    assert type(err) is expected
    assert err.status == status
    assert str(err).startswith("PATCH secrets ns/x: ")


def test_a_terminating_namespace_counts_as_gone() -> None:
    err = translate(api_error(403, "Forbidden", "… because it is being terminated"), "POST")
    assert isinstance(err, kube.NotFound)


def test_write_errors_that_could_quote_data_keep_only_reason_and_field_names() -> None:
    exc = api_error(422, "Invalid", 'Secret "x" is invalid: data[.dockerconfigjson]: '
                    'Invalid value: "pw-SENTINEL-1"', fields=("data[.dockerconfigjson]",))
    err = translate(exc, "POST secrets ns/x", quote_message=False)
    assert "SENTINEL" not in str(err)
    assert "data[.dockerconfigjson]" in str(err)


def test_connection_errors_are_retryable() -> None:
    assert isinstance(translate(ConnectionResetError(), "GET"), kube.Retryable)
