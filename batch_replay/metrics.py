"""A replay's progress as Prometheus metrics (every one is in docs/metrics.md).

A replay is a bounded process: with ``--metrics-port`` it serves these while it runs (and announces
itself to the local Prometheus), so a long backfill shows on the dashboard next to the live job
it rebuilds; ``job`` is the pipeline's name, ``mode`` live or shadow.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from streaming.stores.writer import BatchResult

EVENTS_PLANNED = Gauge("kappa_replay_events_planned", "Records in the replay's range", ["pipeline", "mode"])
EVENTS = Counter("kappa_replay_events_total", "Records of the range replayed so far", ["pipeline", "mode"])
CHUNKS_PLANNED = Gauge("kappa_replay_chunks_planned", "Chunks the replay's range is cut into", ["pipeline", "mode"])
CHUNKS = Counter("kappa_replay_chunks_total", "Chunks written", ["pipeline", "mode"])
ROWS = Counter("kappa_replay_rows_written_total", "Rows each sink took from the replay", ["pipeline", "sink"])
DEAD_LETTERS = Counter("kappa_replay_dead_letters_total", "Replayed records sent to the dead-letter topic",
                       ["pipeline", "topic"])


def planned(job: str, mode: str, topic: str, sinks: tuple[str, ...], events: int, chunks: int) -> None:
    """A replay begins: what it will do, and its counters at 0."""
    EVENTS_PLANNED.labels(job, mode).set(events)
    CHUNKS_PLANNED.labels(job, mode).set(chunks)
    EVENTS.labels(job, mode)
    CHUNKS.labels(job, mode)
    DEAD_LETTERS.labels(job, topic)
    for sink in sinks:
        ROWS.labels(job, sink)


def chunk_done(job: str, mode: str, topic: str, sinks: tuple[str, ...], records: int, result: BatchResult) -> None:
    """One chunk written: ``records`` of the range."""
    EVENTS.labels(job, mode).inc(records)
    CHUNKS.labels(job, mode).inc()
    DEAD_LETTERS.labels(job, topic).inc(result.rejected)
    for sink in sinks:
        ROWS.labels(job, sink).inc(result.changes if sink == "lake" else result.rows)
