"""Prometheus metrics every connector exports, and its /metrics (and probes) endpoint."""
from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram

from kappa.errors import Refused
from monitoring import endpoint
from monitoring.targets import announce

log = logging.getLogger(__name__)

EVENTS = Counter("kappa_connector_events_total", "Events acknowledged by Kafka", ["connector", "topic"])
DEAD_LETTERS = Counter("kappa_connector_dead_letters_total", "Records sent to a dead-letter topic", ["connector", "topic", "reason"])
DELIVERY_ERRORS = Counter("kappa_connector_delivery_errors_total", "Events Kafka did not acknowledge", ["connector"])
CHECKPOINTS = Counter("kappa_connector_checkpoints_total", "Source positions committed", ["connector"])
SOURCE_ERRORS = Counter("kappa_connector_source_errors_total", "Failed reads from the source (retried)", ["connector", "kind"])
LAST_EVENT_TIME = Gauge("kappa_connector_last_event_timestamp_seconds", "event_time of the newest published event", ["connector"])
# How far behind its source a connector is, one series per unit: ``wal_bytes`` and ``seconds`` (CDC:
# the WAL after the slot's confirmed position, and the age of the last confirmed transaction's commit,
# both set at each confirmation and 0 once an idle heartbeat finds nothing waiting), ``seconds`` (API:
# the age of the cursor, the newest record read), ``files`` (files: listed, not yet published).
LAG = Gauge("kappa_connector_source_lag", "How far the connector is behind its source, in the source's unit", ["connector", "unit"])
BATCH_SECONDS = Histogram("kappa_connector_batch_seconds", "Time to read, publish and checkpoint one batch", ["connector"])


def start(connector: str) -> None:
    """Export the connector's counters at 0 from its start, so rate() and the dashboards have a
    series before the first event or error (Prometheus cannot tell "none yet" from "not exported")."""
    DELIVERY_ERRORS.labels(connector)
    CHECKPOINTS.labels(connector)
    BATCH_SECONDS.labels(connector)


def serve(connector: str, port: int, host: str = "127.0.0.1", health: endpoint.Health | None = None) -> None:
    """Start /metrics, /healthz and /readyz on ``host:port`` and announce it to the local Prometheus,
    if there is one.

    ``port`` 0 is a free port the system picks (logged). The local stack's Prometheus discovers it
    (:mod:`monitoring.targets`).
    """
    try:
        port = endpoint.serve(port, host, health).server_port
    except OSError as exc:
        raise Refused(f"connector {connector}: cannot serve metrics on {host}:{port} ({exc.strerror}): set another "
                      "metrics_port in its config file, or 0 for any free port") from None
    announce(f"connector-{connector}", endpoint.announced_host(host), port,
             {"job": "connector"})
    log.info("metrics on http://%s:%d/metrics", endpoint.announced_host(host), port)
