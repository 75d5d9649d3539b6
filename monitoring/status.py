"""``kappa status``: each pipeline's live query as an operator asks about it first: does it run, how
far behind is it, when did its last batch end, which serving version do readers see.

It reads what the lag exporter reads (the query's checkpoint against the topic's end offsets,
:mod:`monitoring.lag`), plus the job's lock (held by a running job's process) and the serving
versions record, so it answers the same whether the job runs or not, and without Prometheus.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from confluent_kafka import KafkaException

from kappa.errors import KappaError, first_line
from kappa.settings import Settings
from monitoring.lag import LagProbe
from streaming import checkpoints, locks
from streaming.jobs import pipeline as pipeline_files


@dataclass(frozen=True)
class PipelineStatus:
    pipeline: str
    query: str | None = None           # the query writing the version readers see
    version: int | None = None         # the serving version readers see
    running: str | None = None         # the process holding the query's lock; None: not running
    lag_events: int | None = None      # records of the topic the query has not processed
    lag_seconds: float | None = None   # age of the oldest of them (0: none waits)
    last_batch: int | None = None      # the newest batch the query completed
    last_batch_at: float | None = None  # when it completed (epoch seconds)
    problem: str | None = None         # why the rest could not be measured

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


def measure(settings: Settings, paths: list[Path]) -> list[PipelineStatus]:
    """The status of each pipeline file's live query (one failing does not hide the others)."""
    probe = LagProbe(settings)
    try:
        return [_one(settings, probe, path) for path in paths]
    finally:
        probe.close()


def _one(settings: Settings, probe: LagProbe, path: Path) -> PipelineStatus:
    name = path.stem
    try:
        pipeline = pipeline_files.load(path)
        name = pipeline.name
        live = pipeline.as_version(settings)
        lags = probe.measure(live.name, live.topic, live.checkpoint)
        last = checkpoints.last_batch(settings, live.checkpoint)
        return PipelineStatus(
            pipeline=name, query=live.name, version=live.serving.number,
            running=locks.holder(settings, locks.JOB, live.checkpoint),
            lag_events=sum(lag.offsets for lag in lags),
            lag_seconds=round(max((lag.seconds for lag in lags), default=0.0), 3),
            last_batch=last[0] if last else None, last_batch_at=last[1] if last else None)
    except (KappaError, ValueError, LookupError, OSError, psycopg2.Error, KafkaException) as exc:
        return PipelineStatus(pipeline=name, problem=first_line(exc))


def table(statuses: list[PipelineStatus], now: float | None = None) -> str:
    """The statuses as a text table, one line per pipeline."""
    now = time.time() if now is None else now
    header = ("PIPELINE", "QUERY", "VERSION", "RUNNING", "LAG EVENTS", "LAG", "LAST BATCH")
    rows = [header]
    for s in statuses:
        if s.problem:
            rows.append((s.pipeline, "-", "-", "-", "-", "-", f"not measured: {s.problem}"))
            continue
        last = "none yet" if s.last_batch is None else f"#{s.last_batch}, {_age(now - s.last_batch_at)} ago"
        rows.append((s.pipeline, s.query, str(s.version), "yes" if s.running else "no", str(s.lag_events),
                     _age(s.lag_seconds), last))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                     for row in rows)


def as_json(statuses: list[PipelineStatus]) -> str:
    return json.dumps([s.as_json() for s in statuses], indent=2)


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
