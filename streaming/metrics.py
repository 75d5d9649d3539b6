"""The streaming jobs' Prometheus metrics (every one is in docs/metrics.md).

All of them are the driver's: the executors' counts and timings come back with each batch
(:class:`streaming.stores.writer.BatchWriter` sums them over the partitions), so one /metrics
endpoint per job shows what every executor wrote. Labels: ``pipeline`` (the query's name),
``topic``, ``partition``, ``sink``, ``kind``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from streaming.stores.writer import BatchResult, LakeCommit

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

BATCHES = Counter("kappa_streaming_batches_total", "Micro-batches completed", ["pipeline"])
BATCH_SECONDS = Histogram("kappa_streaming_batch_duration_seconds", "Duration of a micro-batch, end to end",
                          ["pipeline"], buckets=_BUCKETS)
INPUT_ROWS = Counter("kappa_streaming_input_rows_total", "Records read from Kafka", ["pipeline", "topic"])
INPUT_RATE = Gauge("kappa_streaming_input_rows_per_second", "Input rate of the last micro-batch", ["pipeline"])
PROCESSED_RATE = Gauge("kappa_streaming_processed_rows_per_second", "Processing rate of the last micro-batch", ["pipeline"])
BEHIND = Gauge("kappa_streaming_offsets_behind_latest",
               "Offsets between the last batch's end and the latest offset the query saw (the query's own view; "
               "kappa_streaming_lag_offsets is measured from outside)", ["pipeline", "topic", "partition"])
EVENTS_OUT = Counter("kappa_streaming_rows_written_total",
                     "Rows a sink took: the newest change per key and batch (the lake: every change)", ["pipeline", "sink"])
DEAD_LETTERS = Counter("kappa_streaming_dead_letters_total", "Records sent to the dead-letter topic", ["pipeline", "topic"])
SINK_SECONDS = Histogram("kappa_streaming_sink_write_seconds",
                         "Time a sink's writes of one batch took, summed over the batch's partitions", ["pipeline", "sink"],
                         buckets=_BUCKETS)
ERRORS = Counter("kappa_streaming_errors_total",
                 "Failures by kind: batch (the query restarts from its checkpoint), schema (the job exits), "
                 "reference (a refresh failed; the cached data stays), group_commit (monitoring only)",
                 ["pipeline", "kind"])


ERROR_KINDS = ("batch", "schema", "reference", "group_commit")


def start(job: str, topic: str, sinks: list[str]) -> None:
    """Export a job's counters at 0 from its start: a rate() or an alert on errors and dead letters
    then reads 0, not "no data", until the first one."""
    for kind in ERROR_KINDS:
        ERRORS.labels(job, kind)
    DEAD_LETTERS.labels(job, topic)
    INPUT_ROWS.labels(job, topic)
    BATCHES.labels(job)
    for sink in sinks:
        EVENTS_OUT.labels(job, sink)


def record_lake_batch(job: str, result: LakeCommit) -> None:
    """One commit of a job's staged changes to the lake."""
    EVENTS_OUT.labels(job, "lake").inc(result.changes)
    SINK_SECONDS.labels(job, "lake").observe(result.seconds)


def record_batch(job: str, topic: str, sinks: list[str], result: BatchResult) -> None:
    """One written serving batch's counts and timings."""
    for sink in sinks:
        if sink != "lake":  # the lake's commits count it (record_lake_batch)
            EVENTS_OUT.labels(job, sink).inc(result.rows)
    DEAD_LETTERS.labels(job, topic).inc(result.rejected)
    for sink, seconds in result.partition_seconds.items():
        if sink in sinks:
            SINK_SECONDS.labels(job, sink).observe(seconds)
