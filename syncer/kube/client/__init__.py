"""The real `ClusterAPI` over HTTP: the only package that imports `kubernetes`.

Split by concern: `translate` (library errors to ours), `transport` (configuration, requests,
retries, the write limit), `cluster` (the typed API). `connect` is the entry point.
"""

from syncer.kube.client.cluster import Cluster, connect

__all__ = ["Cluster", "connect"]
