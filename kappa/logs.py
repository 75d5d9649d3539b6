"""The one log format of every long-running process: a JSON object per line on stderr.

Fields: ``time`` (ISO-8601, UTC, milliseconds), ``level``, ``logger``, ``message``, the process's
kind and name (``"pipeline": "orders"``, ``"connector": "cdc"``, ``"replay": "batch-replay"``,
``"exporter": "lag-exporter"``), and whatever a record adds as ``extra`` fields."""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

from pythonjsonlogger.json import JsonFormatter

KINDS = ("pipeline", "connector", "replay", "exporter")
_process: tuple[str, str] | None = None  # (kind, name) once configured


class _Formatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure(kind: str, name: str, level: str = "INFO") -> None:
    """Every record of this process as one JSON line with ``{kind: name}`` on it, from ``level`` up."""
    global _process
    if kind not in KINDS:
        raise ValueError(f"log kind {kind!r}: one of {KINDS}")
    _process = (kind, name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(
        "{asctime}{levelname}{name}{message}", style="{",
        rename_fields={"levelname": "level", "asctime": "time", "name": "logger"}, static_fields={kind: name},
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warning is a line like the others, not two plain ones
    for chatty in ("httpx", "httpx2", "httpcore", "urllib3", "py4j"):  # a line per request or connection otherwise
        logging.getLogger(chatty).setLevel(logging.WARNING)


def process() -> tuple[str, str] | None:
    """The (kind, name) every line of this process carries, once :func:`configure` ran; a JVM the
    process starts (Spark's) logs with the same (streaming/session.py)."""
    return _process
