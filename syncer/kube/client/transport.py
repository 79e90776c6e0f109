"""HTTP to the apiserver: configuration loading, raw-JSON requests, retries, the write limit.

Requests go through the `kubernetes` client's transport (auth, TLS, proxies from the kubeconfig)
but bodies are sent and read as plain JSON. Retries (429/5xx/timeouts) back off with jitter on
the stop event, so shutdown never waits for a sleeping retry.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import tenacity
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

import syncer
from syncer.core import model, settings
from syncer.kube import errors, jsonlist, ratelimit
from syncer.kube.client import translate

REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read (seconds) for everything but watches
ATTEMPTS = 6
LIST_CHUNK_BYTES = 256 * 1024


def load_configuration(kube: settings.KubeSettings) -> k8s.Configuration:
    """In-cluster config when KUBERNETES_SERVICE_HOST is set (and no kubeconfig or context is
    given), else the kubeconfig file ($KUBECONFIG / ~/.kube/config). ConfigurationError when
    neither is usable; its message names the file, never its content."""
    cfg = k8s.Configuration()
    try:
        if kube.kubeconfig is None and kube.context is None and os.environ.get(
                "KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=cfg)
        else:
            k8s_config.load_kube_config(
                config_file=kube.kubeconfig, context=kube.context, client_configuration=cfg,
                persist_config=False)
    except k8s_config.ConfigException as exc:
        raise errors.ConfigurationError(_config_problem(kube, exc)) from None
    except OSError as exc:
        where = kube.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise errors.ConfigurationError(
            f"cannot read kubeconfig {where}: {exc.strerror or type(exc).__name__}") from None
    except Exception as exc:  # a malformed file: YAML or structure errors of any kind
        where = kube.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise errors.ConfigurationError(
            f"kubeconfig {where} is not usable ({type(exc).__name__})") from None
    cfg.retries = False  # we retry ourselves, visibly and with backoff
    cfg.connection_pool_maxsize = 16
    return cfg


def _config_problem(kube: settings.KubeSettings, exc: Exception) -> str:
    """One line for the user; the library's text quotes the file's content at times, so only
    what is known to be safe is shown."""
    text = str(exc)
    where = kube.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    if kube.context and "contexts list" in text:
        return f"kubeconfig {where} has no context {kube.context!r}"
    if "No configuration found" in text or "Invalid kube-config file" in text:
        return f"no usable kubeconfig at {where} (and not running in a cluster)"
    if "Service host/port is not set" in text or "Service token file" in text:
        return "not running in a cluster and no kubeconfig given"
    return f"Kubernetes configuration at {where} is not usable ({type(exc).__name__})"


class Transport:
    """A connection to one apiserver. Thread-safe; writes share one rate limiter."""

    def __init__(self, configuration: k8s.Configuration, *, qps: float, burst: int,
                 stop: threading.Event) -> None:
        self.api_client = k8s.ApiClient(configuration)
        # The apiserver names a writer in metadata.managedFields after its User-Agent (up to the
        # first "/"): ours is "pullsecret-syncer", which tells our changes from another writer's
        # (who takes our imagePullSecrets entry out: syncer.decide.fight). No query parameter is
        # added, so request paths stay as they were.
        self.api_client.user_agent = f"{model.FIELD_MANAGER}/{syncer.__version__}"
        self._stop = stop
        self._bucket = ratelimit.TokenBucket(qps, burst, stop=stop)

    def close(self) -> None:
        self.api_client.rest_client.pool_manager.clear()

    def _retrying(self) -> tenacity.Retrying:
        """429/5xx/timeouts: exponential backoff with jitter, cut short by shutdown."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, errors.KubeError) and e.retryable),
            wait=tenacity.wait_exponential(multiplier=0.2, max=5.0) + tenacity.wait_random(0, 0.2),
            stop=tenacity.stop_any(tenacity.stop_after_attempt(ATTEMPTS),
                                   tenacity.stop_when_event_set(self._stop)),
            sleep=self._sleep,
            reraise=True,
        )

    def _sleep(self, seconds: float) -> None:
        """A retry's backoff; shutdown cuts it short."""
        self._stop.wait(seconds)

    def _send(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
              body: Any = None, content_type: str = "application/json",
              timeout: tuple[float, float] = REQUEST_TIMEOUT) -> Any:
        """One HTTP request; returns the raw urllib3 response (2xx) or raises ApiException."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        serialized = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=params, header_params=headers,
            body=body, auth_settings=["BearerToken"])
        resp = self.api_client.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
        return resp.response

    def call(self, method: str, path: str, what: str, *, query: Mapping[str, Any] | None = None,
             body: Any = None, content_type: str = "application/json", limited: bool = False,
             quote_message: bool = True, retry: bool = True) -> dict[str, Any]:
        """A JSON request/response. `limited`: counts against --kube-qps/--kube-burst."""
        def attempt() -> dict[str, Any]:
            if limited:
                self._bucket.acquire()
            try:
                resp = self._send(method, path, query=query, body=body,
                                  content_type=content_type)
                doc = json.loads(resp.data or b"{}")
            except Exception as exc:
                raise translate.translate(exc, what, quote_message=quote_message) from exc
            return doc if isinstance(doc, dict) else {}
        if not retry:
            return attempt()
        result: dict[str, Any] = self._retrying()(attempt)
        return result

    def call_list(self, path: str, what: str, *, query: Mapping[str, Any],
                  decode: Callable[[dict[str, Any]], Any]) -> tuple[dict[str, Any], list[Any]]:
        """One list page: (the document without its items, the decoded items). The response is
        read in chunks and each item decoded as soon as it is complete, so a page of large
        objects is never held whole (at most one object and one chunk at a time)."""
        def attempt() -> tuple[dict[str, Any], list[Any]]:
            items: list[Any] = []
            try:
                resp = self._send("GET", path, query=query)
                try:
                    splitter = jsonlist.Splitter()
                    for chunk in resp.stream(LIST_CHUNK_BYTES, decode_content=True):
                        for raw in splitter.feed(chunk):
                            obj = json.loads(raw)
                            if isinstance(obj, dict):
                                items.append(decode(obj))
                    doc = splitter.skeleton()
                finally:
                    resp.release_conn()
            except Exception as exc:
                raise translate.translate(exc, what) from exc
            return doc, items
        result: tuple[dict[str, Any], list[Any]] = self._retrying()(attempt)
        return result

    def stream(self, path: str, what: str, *, query: Mapping[str, Any],
               timeout_seconds: int) -> Iterator[dict[str, Any]]:
        """The JSON objects of a watch response, one per line, as they arrive."""
        try:
            resp = self._send("GET", path, query=query,
                              timeout=(REQUEST_TIMEOUT[0], timeout_seconds + 30.0))
        except Exception as exc:
            raise translate.translate(exc, what) from exc
        try:
            for line in _lines(resp):
                event = json.loads(line)
                if isinstance(event, dict):
                    yield event
        except errors.KubeError:
            raise
        except Exception as exc:
            raise translate.translate(exc, what) from exc
        finally:
            resp.release_conn()


def _lines(resp: Any) -> Iterator[bytes]:
    """Split a chunked watch response into JSON lines as they arrive."""
    buf = b""
    for chunk in resp.stream(amt=None, decode_content=True):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf
