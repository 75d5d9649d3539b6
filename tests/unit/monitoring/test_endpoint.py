"""The processes' HTTP endpoint: what Kubernetes' probes and Prometheus get, over real HTTP."""
from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from connectors.runtime import StopFlag
from monitoring import endpoint
from tests.conftest import free_port


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture()
def served():
    health = endpoint.Health(stall_after_s=0.5)
    port = free_port()
    server = endpoint.serve(port, "127.0.0.1", health)
    yield health, port
    server.shutdown()
    server.server_close()


def test_probes_follow_the_process(served) -> None:
    health, port = served
    assert _get(port, endpoint.LIVENESS_PATH)[0] == 200
    status, body = _get(port, endpoint.READINESS_PATH)
    assert (status, body.strip()) == (503, "starting")
    health.ready()
    assert _get(port, endpoint.READINESS_PATH) == (200, "ready\n")
    health.not_ready("restarting in 5 s (restart 1 of 10): ClickHouse at 127.0.0.1:18123 is down")
    status, body = _get(port, endpoint.READINESS_PATH)
    assert status == 503 and "ClickHouse" in body


def test_a_loop_that_stopped_turning_fails_liveness(served) -> None:
    health, port = served
    health.ready()
    time.sleep(0.7)
    status, body = _get(port, endpoint.LIVENESS_PATH)
    assert status == 503 and "stuck" in body
    assert _get(port, endpoint.READINESS_PATH)[0] == 503  # a stuck process is not ready either
    health.beat()
    assert _get(port, endpoint.LIVENESS_PATH)[0] == 200


def test_every_other_path_is_the_prometheus_exposition(served) -> None:
    _health, port = served
    status, body = _get(port, endpoint.METRICS_PATH)
    assert status == 200 and "python_info" in body


def test_a_connectors_stop_questions_are_its_heartbeat() -> None:
    stop = StopFlag(endpoint.Health(stall_after_s=0.3))
    time.sleep(0.4)
    assert not stop.health.liveness()[0]
    stop.is_set()
    assert stop.health.liveness()[0]
    stop.wait(0.01)
    assert stop.health.liveness()[0]
