"""The one HTTP endpoint of every platform process: /metrics for Prometheus, /healthz and /readyz for
Kubernetes' probes (k8s/), on the metrics port.

A process that is alive but stuck (a loop that stopped turning) must be restarted, and one that is
starting or restarting its work must not count as available; neither shows in /metrics, which
answers as long as the process exists. So the process tells its :class:`Health` that its loop turns
(``beat``) and whether it does its work (``ready``):

- ``/healthz``: 200 while the last beat is at most ``stall_after_s`` old, else 503 (liveness probe);
- ``/readyz``: 200 once the process said it is ready, 503 with the reason before and while it
  restarts (readiness probe);
- anything else: the Prometheus exposition of the process's registry.

The address comes from the settings (``metrics.host``: 127.0.0.1 by default; ``0.0.0.0`` in a pod,
so the kubelet's probes and Prometheus reach it on the pod's address).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"
PATHS = (METRICS_PATH, LIVENESS_PATH, READINESS_PATH)


class Health:
    """What the probes answer; every method is safe to call from any thread."""

    def __init__(self, stall_after_s: float = 300.0) -> None:
        self.stall_after_s = stall_after_s
        self._last_beat = time.monotonic()
        self._ready = False
        self._why = "starting"
        self._lock = threading.Lock()

    @classmethod
    def passive(cls) -> "Health":
        """For a process with no loop of its own to watch (the lag exporter: each scrape does the work;
        a replay: a run to completion whose progress is in its metrics): alive and ready while it serves."""
        health = cls(stall_after_s=float("inf"))
        health.ready()
        return health

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def ready(self) -> None:
        with self._lock:
            self._ready, self._why = True, "ready"
        self.beat()

    def not_ready(self, why: str) -> None:
        with self._lock:
            self._ready, self._why = False, why
        self.beat()

    def liveness(self) -> tuple[bool, str]:
        quiet = time.monotonic() - self._last_beat
        if quiet > self.stall_after_s:
            return False, f"no progress for {quiet:.0f} s (more than {self.stall_after_s:.0f} s): the loop is stuck"
        return True, "alive"

    def readiness(self) -> tuple[bool, str]:
        alive, why = self.liveness()
        if not alive:
            return False, why
        with self._lock:
            return self._ready, self._why


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # a line per scrape and probe otherwise
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def app(health: Health) -> Callable:
    """The WSGI application: probes on their paths, the Prometheus exposition elsewhere."""
    metrics = make_wsgi_app()
    probes = {LIVENESS_PATH: health.liveness, READINESS_PATH: health.readiness}

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        probe = probes.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return metrics(environ, start_response)
        ok, why = probe()
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"{why}\n".encode()]

    return application


def serve(port: int, host: str, health: Health | None = None) -> WSGIServer:
    """Serve :func:`app` on ``host:port`` from a daemon thread for the life of the process.

    Raises OSError when the port is taken (the caller names its setting)."""
    server = make_server(host, port, app(health or Health()), _Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name=f"endpoint-{port}", daemon=True).start()
    return server


def announced_host(host: str) -> str:
    """The address the local Prometheus scrapes for a process listening on ``host`` (all addresses:
    loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
