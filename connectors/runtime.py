"""What every connector process shares: its TOML config, JSON logs, a stop flag set by SIGTERM, and
the health its probes answer (monitoring/endpoint.py)."""
from __future__ import annotations

import logging
import signal
import threading
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from kappa import logs
from kappa.errors import Refused
from monitoring.endpoint import Health

C = TypeVar("C", bound=BaseModel)


class ConnectorConfig(BaseModel):
    """Keys every connector's config file has (endpoints come from the platform settings)."""

    name: str
    # /metrics, /healthz and /readyz port; 0: a free port the system picks (logged, and announced to
    # the local Prometheus).
    metrics_port: int = 0
    # /healthz fails once the connector's loop has not turned for this long (a stuck process).
    stall_after_s: float = 300.0
    # Seconds between source-position commits (each waits for Kafka to acknowledge everything before it).
    commit_interval_s: float = 1.0


def load_config(path: Path, model: type[C]) -> C:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise Refused(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise Refused(f"config file {path} is not valid TOML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refused(f"config file {path}:\n{exc}") from None


def run(config_file: Path, log_level: str, config_model: type[ConnectorConfig], connector_class) -> None:
    """The whole life of a connector process (``kappa connector <kind>``): config, logs, metrics
    endpoint, run until SIGTERM."""
    from connectors import metrics
    from kappa.settings import get_settings

    config = load_config(config_file, config_model)
    logs.configure("connector", config.name, log_level)
    settings = get_settings()
    stop = StopFlag(Health(config.stall_after_s)).install()
    metrics.start(config.name)
    metrics.serve(config.name, config.metrics_port, settings.metrics.host, stop.health)
    connector_class(config, settings, stop).run()


class StopFlag:
    """Set by SIGTERM or SIGINT: the connector finishes its batch, commits and exits.

    Every connector loop asks it whether to stop, at least once per poll or batch, so each question
    is also the liveness beat of the process (``health``); the connector marks itself ready once it
    reads its source."""

    def __init__(self, health: Health | None = None) -> None:
        self._event = threading.Event()
        self.health = health or Health()

    def install(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self.set(signum))
        return self

    def set(self, signum: int | None = None) -> None:
        if signum is not None:
            logging.getLogger(__name__).info("received %s: stopping after the current batch",
                                             signal.Signals(signum).name)
        self._event.set()

    def is_set(self) -> bool:
        self.health.beat()
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        self.health.beat()
        stopped = self._event.wait(seconds)
        self.health.beat()
        return stopped
