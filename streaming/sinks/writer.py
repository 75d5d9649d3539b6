"""A batch into every sink from the executors: the one write path of live jobs and batch replay.

The driver only plans. A prepared batch (:func:`streaming.jobs.runner.prepare`) is repartitioned by
its key into ``partitions`` partitions (a number fixed for the life of a checkpoint, so a batch
rerun after a crash is cut the same way) and each partition, in a Python worker on the executor
that holds it:

1. sends its rejected rows to ``<topic>.dlq``;
2. keeps the newest change per key (keys never span partitions, so this is the batch's fold);
3. writes ClickHouse, Cassandra and PostgreSQL with their own clients, concurrently (one thread per
   store; the partition ends when all of them have written, and fails if any one failed), each
   client opened once per worker and reused across batches, each write retried by
   :class:`~streaming.sinks.base.Sink`'s policy and idempotent per (query, batch, partition);
4. runs the job's per-partition ``extra`` work (e.g. features), with the same tokens.

The lake is not on this path for a live job: its change history is written by the pipeline's own
lake query (:class:`LakeWriter`, on its own trigger), so a Delta commit never delays the serving
stores. A replay chunk (``BatchPlan.lake``) still appends its changes to the lake in the same run:
each partition hands them back to Spark, whose Delta writer appends them as one commit per chunk
(``txnAppId``/``txnVersion``) only after every partition has done 1-4.

A batch whose Delta commit exists has therefore been written: a rerun of it appends nothing to the
lake again. A live lake query's rerun (the process died between the Delta commit and Spark's) still
runs, through Spark's noop sink, so its streaming state commits; a replay's committed chunk is
skipped unrun. Nothing but per-partition counts and timings (an accumulator) returns to the driver.
Rows with a writer schema id the decoder does not know fail the batch before any partition writes
(:data:`decoding.guard_known`).
"""
from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import AccumulatorParam, TaskContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from settings import Settings
from streaming import decode as decoding
from streaming.sinks import lake
from streaming.sinks.base import RetryPolicy, Sink, WriteToken
from streaming.sinks.dead_letters import RECORD_COLUMNS, DeadLetterSink
from streaming.tables import Table
from streaming.transforms import changes
from streaming.transforms.validate import ERROR

log = logging.getLogger(__name__)
PARTITION_SINKS = ("clickhouse", "cassandra", "postgres")  # written concurrently by each partition
SINKS = ("lake", *PARTITION_SINKS)


@dataclass(frozen=True)
class PartitionContext:
    """What a job's per-partition ``extra`` hook gets besides the partition's accepted changes."""

    sinks: dict[str, Sink]
    token: WriteToken
    retry: RetryPolicy
    namespace: str

    def retried(self, sink: str, table: str, action: Callable[[], None]) -> None:
        """Run ``action`` (a write to ``sink``'s ``table``) under the sinks' retry policy."""
        self.sinks[sink].call_with_retries(action, f"{self.namespace}.{table}", self.token, self.retry)


@dataclass(frozen=True)
class BatchPlan:
    """Everything a partition's task needs, shipped to the executors with it (pickled)."""

    settings: Settings
    query: str
    topic: str
    namespace: str
    spec: Table
    sinks: tuple[str, ...]                     # partition sinks of this job, in PARTITION_SINKS order
    lake: bool                                 # BatchWriter appends the changes to the lake too (a replay's)
    tie_break: tuple[str, ...] = ("event_id",)
    retry: RetryPolicy = RetryPolicy()
    extra: Callable[[pa.Table, PartitionContext], None] | None = None
    # Testing aid: "<stage>:<batch>[:<partition>]" SIGKILLs the job right after that stage (a sink,
    # "dlq", "extra" or "partition" for all of them) wrote that batch (in that partition); "lake:<batch>"
    # right after a lake batch's Delta commit; "served:<batch>" once every partition of a serving batch wrote.
    crash_after: str | None = None
    crash_pids: tuple[int, ...] = ()


class _Totals(AccumulatorParam):
    """Counts and seconds summed over a batch's partitions."""

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, left: dict, right: dict) -> dict:  # noqa: N802 (Spark's name)
        for key, value in right.items():
            left[key] = left.get(key, 0) + value
        return left


def _typed(batch: DataFrame, spec: Table) -> DataFrame:
    """A prepared batch in the table's types, failing on a writer schema id the decoder does not know."""
    return batch.select(*[F.col(c).cast(t).alias(c) for c, t in spec.columns],
                        F.col(changes.VERSION).cast("bigint").alias(changes.VERSION),
                        F.col(changes.DELETED).cast("boolean").alias(changes.DELETED),
                        *RECORD_COLUMNS, decoding.SCHEMA_ID, decoding.guard_known(F.col(ERROR)).alias(ERROR))


class BatchWriter:
    """Writes batches of one job's table to the partition sinks (and, for a replay, the lake);
    created once per query (it owns the stats accumulator)."""

    def __init__(self, spark: SparkSession, plan: BatchPlan, partitions: int) -> None:
        self.spark, self.plan, self.partitions = spark, plan, partitions
        self.location = lake.ensure_table(spark, plan.settings, plan.namespace, plan.spec, plan.query) if plan.lake else None
        self._totals = spark.sparkContext.accumulator({}, _Totals())

    def write(self, batch: DataFrame, batch_id: int) -> dict:
        """One batch (or replay chunk) of prepared rows into every sink; the summed counts and timings."""
        self._totals.value = {}
        plan = self.plan
        spec = plan.spec
        started = time.perf_counter()
        partitioned = _typed(batch, spec).repartition(self.partitions, *spec.key)
        out_schema = ", ".join(f"`{c}` {t}" for c, t in
                               [*spec.columns, (changes.VERSION, "bigint"), (changes.DELETED, "boolean")])
        written = partitioned.mapInArrow(_partition_writer(plan, batch_id, self._totals), out_schema)
        if self.location is not None:
            lake.append(written, self.location, plan.query, batch_id)  # a committed chunk: Delta skips it unrun
        else:
            written.write.format("noop").mode("overwrite").save()
        totals = dict(self._totals.value)
        seconds = {k.removeprefix("s."): round(v, 3) for k, v in totals.items() if k.startswith("s.")}
        return {"rows": totals.get("rows", 0), "changes": totals.get("changes", 0),
                "rejected": totals.get("rejected", 0), "seconds": round(time.perf_counter() - started, 3),
                "partition_seconds": seconds}


class LakeWriter:
    """A live pipeline's change history: every accepted change of a lake query's batch appended to
    the Delta table as one commit, at most once per (query, batch id).

    It runs in the JVM alone (no Python worker, no shuffle of ours): the rows are already prepared,
    and Delta's optimized write groups them by date. A batch rerun after its Delta commit (the
    process died before Spark committed the batch) is run through the noop sink instead: Delta
    would skip the append unrun, and the dedupe's state of that batch would never commit.
    """

    def __init__(self, spark: SparkSession, plan: BatchPlan) -> None:
        self.spark, self.plan = spark, plan
        self.location = lake.ensure_table(spark, plan.settings, plan.namespace, plan.spec, plan.query)
        # The newest batch id the lake holds for this query, read once when the query starts.
        self.holds = lake.committed_batch(plan.settings, plan.namespace, plan.spec.name, plan.query)

    def write(self, batch: DataFrame, batch_id: int) -> dict:
        """One lake batch; the changes it appended (its commit's numOutputRows) and its time."""
        plan = self.plan
        started = time.perf_counter()
        accepted = _typed(batch, plan.spec).where(F.col(ERROR).isNull()).select(*plan.spec.all_columns)
        if self.holds is not None and batch_id <= self.holds:
            accepted.write.format("noop").mode("overwrite").save()
            return {"changes": 0, "seconds": round(time.perf_counter() - started, 3)}
        lake.append(accepted, self.location, plan.query, batch_id)
        maybe_crash(plan, "lake", WriteToken(plan.query, batch_id, -1))  # committed; Spark's commit not yet
        return {"changes": lake.last_commit_rows(self.spark, self.location),
                "seconds": round(time.perf_counter() - started, 3)}


# --- on the executors ------------------------------------------------------------------------

_open_sinks: dict[tuple, Sink] = {}  # per Python worker, reused by every task it runs


def _sinks(plan: BatchPlan) -> dict[str, Sink]:
    """This worker's open clients for the plan's sinks and its dead-letter topic."""
    from streaming.sinks.cassandra import CassandraSink
    from streaming.sinks.clickhouse import ClickHouseSink
    from streaming.sinks.postgres import PostgresSink

    makers = {"clickhouse": lambda: ClickHouseSink(plan.settings, plan.namespace),
              "cassandra": lambda: CassandraSink(plan.settings, plan.namespace),
              "postgres": lambda: PostgresSink(plan.settings, plan.namespace),
              "dlq": lambda: DeadLetterSink(plan.settings, plan.topic)}
    endpoints = plan.settings.model_dump_json()
    opened = {}
    for name in (*plan.sinks, "dlq"):
        key = (name, endpoints, plan.namespace, plan.topic)
        if key not in _open_sinks:
            _open_sinks[key] = makers[name]()
        opened[name] = _open_sinks[key]
    return opened


def _partition_writer(plan: BatchPlan, batch_id: int, totals) -> Callable[[Iterator[pa.RecordBatch]],
                                                                          Iterator[pa.RecordBatch]]:
    spec = plan.spec

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        received = list(batches)
        everything = pa.Table.from_batches(received) if received else None
        if everything is None or everything.num_rows == 0:
            return
        partition = TaskContext.get().partitionId()
        token = WriteToken(plan.query, batch_id, partition)
        seconds: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[f"s.{stage}"] = now - clock
            clock = now
            maybe_crash(plan, stage, token)

        sinks = _sinks(plan)
        accepted = pc.is_null(everything[ERROR])
        rejected = everything.filter(pc.invert(accepted))
        if rejected.num_rows:
            sinks["dlq"].write_with_retries(rejected, None, token, plan.retry, table=sinks["dlq"].topic)
        every_change = everything.filter(accepted).select(spec.all_columns)
        latest = changes.latest_per_key_arrow(every_change, list(spec.key), list(plan.tie_break))
        lap("dlq")
        seconds.update(_write_concurrently(plan, sinks, latest, token))
        lap("stores")
        if plan.extra is not None:
            plan.extra(every_change, PartitionContext({n: sinks[n] for n in plan.sinks}, token, plan.retry,
                                                      plan.namespace))
            lap("extra")
        maybe_crash(plan, "partition", token)
        totals.add({"rows": latest.num_rows, "changes": every_change.num_rows, "rejected": rejected.num_rows,
                    **seconds})
        if plan.lake:
            yield from every_change.to_batches()

    return write_partition


_threads: ThreadPoolExecutor | None = None  # per Python worker: one thread per partition sink


def _write_concurrently(plan: BatchPlan, sinks: dict[str, Sink], latest: pa.Table,
                        token: WriteToken) -> dict[str, float]:
    """The partition's newest changes into every partition sink at once; each one's seconds.

    The stores' clients wait on their servers most of the time (and release the GIL meanwhile), so
    the partition takes as long as its slowest store rather than their sum. Every write is waited
    for before a failure is raised: no write of a failed partition goes on while its retry runs.
    """
    global _threads
    if len(plan.sinks) <= 1:
        return {f"s.{name}": _timed_write(plan, sinks[name], name, latest, token) for name in plan.sinks}
    if _threads is None:
        _threads = ThreadPoolExecutor(len(PARTITION_SINKS), thread_name_prefix="kappa-sink")
    running = {name: _threads.submit(_timed_write, plan, sinks[name], name, latest, token) for name in plan.sinks}
    wait(running.values())
    for future in running.values():
        if future.exception() is not None:
            raise future.exception()
    return {f"s.{name}": future.result() for name, future in running.items()}


def _timed_write(plan: BatchPlan, sink: Sink, name: str, latest: pa.Table, token: WriteToken) -> float:
    started = time.perf_counter()
    sink.write_with_retries(latest, plan.spec, token, plan.retry)
    maybe_crash(plan, name, token)
    return time.perf_counter() - started


def maybe_crash(plan: BatchPlan, stage: str, token: WriteToken) -> None:
    """The crash points of ``plan.crash_after`` (a testing aid: the exactly-once tests' SIGKILLs)."""
    if not plan.crash_after:
        return
    if plan.crash_after in (f"{stage}:{token.batch_id}", f"{stage}:{token.batch_id}:{token.partition}"):
        log.warning("crash_after %s: killing the job", plan.crash_after)
        for pid in plan.crash_pids:
            os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
