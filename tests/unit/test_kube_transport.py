"""The real client's transport without a server: retries stop at shutdown, and the write limit
releases a waiting writer when the stop event is set."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from kubernetes import client as k8s

from syncer.kube import errors, ratelimit
from syncer.kube.client import transport
from tests.unit import fakes


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_retrying_request_gives_up_at_once_when_the_daemon_stops() -> None:
    cfg = k8s.Configuration()
    cfg.host = f"http://127.0.0.1:{closed_port()}"
    cfg.retries = False
    stop = threading.Event()
    http = transport.Transport(cfg, qps=20, burst=40, stop=stop)
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    with pytest.raises(errors.Retryable):
        http.call("POST", "/api/v1/namespaces/x/secrets", "POST secrets x/y", body={},
                  limited=True)
    assert time.monotonic() - began < 1.5  # six attempts with backoff would take ≥ 3 s


def test_the_write_limit_spends_the_burst_then_waits_one_over_qps() -> None:
    clock = fakes.FakeClock()
    bucket = ratelimit.TokenBucket(2.0, 3, clock=clock, wait=clock.wait)
    before = clock()
    for _ in range(5):
        assert bucket.acquire()
    assert clock() - before == pytest.approx(1.0)  # 3 free, then 2 at 0.5 s each


def test_a_writer_waiting_for_the_limit_is_released_by_stop() -> None:
    stop = threading.Event()
    bucket = ratelimit.TokenBucket(0.01, 1, stop=stop)
    assert bucket.acquire()
    threading.Timer(0.1, stop.set).start()
    began = time.monotonic()
    assert bucket.acquire() is False
    assert time.monotonic() - began < 1.0
