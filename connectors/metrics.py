"""Prometheus metrics every connector exports, and its /metrics endpoint."""
from __future__ import annotations

import atexit
import json
import logging
import os
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

EVENTS = Counter("connector_events_total", "Events acknowledged by Kafka", ["connector", "topic"])
DEAD_LETTERS = Counter("connector_dead_letters_total", "Records sent to a dead-letter topic", ["connector", "topic", "reason"])
DELIVERY_ERRORS = Counter("connector_delivery_errors_total", "Events Kafka did not acknowledge", ["connector"])
CHECKPOINTS = Counter("connector_checkpoints_total", "Source positions committed", ["connector"])
SOURCE_ERRORS = Counter("connector_source_errors_total", "Failed reads from the source (retried)", ["connector", "kind"])
LAST_EVENT_TIME = Gauge("connector_last_event_timestamp_seconds", "event_time of the newest published event", ["connector"])
LAG = Gauge("connector_source_lag", "How far the connector is behind its source, in the source's unit", ["connector", "unit"])
BATCH_SECONDS = Histogram("connector_batch_seconds", "Time to read, publish and checkpoint one batch", ["connector"])


def serve(connector: str, port: int, host: str = "127.0.0.1") -> None:
    """Start /metrics on ``host:port`` and announce it to the local Prometheus, if there is one.

    ``port`` 0 disables the endpoint. The local stack's Prometheus discovers targets from JSON files
    in ``$KAPPA_PROMETHEUS_TARGETS_DIR`` (default ``.stack/prometheus/targets``); in Kubernetes the
    pod's annotations do this instead.
    """
    if not port:
        return
    start_http_server(port, addr=host)
    targets_dir = os.environ.get("KAPPA_PROMETHEUS_TARGETS_DIR")
    if targets_dir is None:
        from stack.paths import service_dir

        targets_dir = str(service_dir("prometheus") / "targets")
    path = Path(targets_dir)
    if path.is_dir():
        target = path / f"connector-{connector}.json"
        target.write_text(json.dumps(
            [{"targets": [f"{host}:{port}"], "labels": {"job": "connector", "connector": connector}}]))
        atexit.register(target.unlink, missing_ok=True)  # a stopped connector is not a target
    log.info("metrics on http://%s:%d/metrics", host, port)
