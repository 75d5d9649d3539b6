"""A batch into every sink from the executors: the one write path of live jobs and batch replay.

The driver only plans. A prepared batch (:func:`streaming.plan.prepare`) is repartitioned by
its key into ``partitions`` partitions (a number fixed for the life of a checkpoint, so a batch
rerun after a crash is cut the same way) and each partition, in a Python worker on the executor
that holds it:

1. sends its rejected rows to ``<topic>.dlq``;
2. keeps the newest change per key (keys never span partitions, so this is the batch's fold);
3. writes ClickHouse, Cassandra and PostgreSQL with their own clients and, for a live job's lake,
   stages every accepted change (:class:`~streaming.stores.lake.StagedChanges`), concurrently (one
   thread per store; the partition ends when all of them have written, and fails if any one
   failed), each client opened once per worker and reused across batches, each write retried by
   :class:`~streaming.stores.base.Sink`'s policy and idempotent per (query, batch, partition);
4. runs the job's per-partition ``extra`` work (e.g. features), with the same tokens.

No Delta commit sits in a live job's serving batch: the job's :class:`LakeWriter` appends the
staged changes of the batches Spark has committed every ``lake_trigger_seconds``, as one commit
(``txnVersion`` = the newest serving batch in it). A replay chunk (``BatchPlan.lake``) appends its
changes to the lake in the same run instead: each partition hands them back to Spark, whose Delta
writer appends them as one commit per chunk (``txnAppId``/``txnVersion``) only after every
partition has done 1-4; a chunk whose commit exists is skipped unrun.

Nothing but per-partition counts and timings (an accumulator) returns to the driver. Rows with a
writer schema id the decoder does not know fail the batch before any partition writes
(:data:`decoding.guard_known`).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import AccumulatorParam, TaskContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappa.settings import Settings
from streaming import decode as decoding
from streaming.stores import lake
from streaming.stores.base import RetryPolicy, Sink, Store, WriteToken
from streaming.stores.dead_letters import RECORD_COLUMNS, DeadLetterSink
from streaming.tables import Table
from streaming.transforms import changes
from streaming.transforms.validate import ERROR

log = logging.getLogger(__name__)


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
    stores: tuple[Store, ...]                  # the serving stores each partition writes, in the registry's order
    lake: bool                                 # BatchWriter appends the changes to the lake too (a replay's)
    staged: bool = False                       # partitions stage their changes for a LakeWriter (a live job's)
    tie_break: tuple[str, ...] = ("event_id",)
    retry: RetryPolicy = RetryPolicy()
    extra: Callable[[pa.Table, PartitionContext], None] | None = None
    # Testing aid: "<stage>:<batch>[:<partition>]" SIGKILLs the job right after that stage (a sink,
    # "staged" for the lake's staging, "dlq", "extra" or "partition" for all of them) wrote that batch
    # (in that partition); "served:<batch>" once every partition of a serving batch wrote; "lake:<batch>"
    # right after the Delta commit that took that serving batch's changes.
    crash_after: str | None = None
    crash_pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class BatchResult:
    """What one batch (or replay chunk) did, summed over its partitions on the executors."""

    rows: int                          # rows upserted into each serving store: the newest change per key
    changes: int                       # accepted changes (what the lake appends)
    rejected: int                      # records sent to the DLQ
    seconds: float                     # the batch's wall time on the driver
    partition_seconds: dict[str, float]  # per stage ("dlq", "stores", each store, ...), summed over partitions


@dataclass(frozen=True)
class LakeCommit:
    """One commit of a live job's staged changes to the lake."""

    changes: int
    batches: tuple[int, int]           # the serving batches whose changes it took (first, last)
    seconds: float


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

    def write(self, batch: DataFrame, batch_id: int) -> BatchResult:
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
        return BatchResult(rows=totals.get("rows", 0), changes=totals.get("changes", 0),
                           rejected=totals.get("rejected", 0), seconds=round(time.perf_counter() - started, 3),
                           partition_seconds=seconds)


class LakeWriter:
    """A live pipeline's change history: the changes its serving batches staged, appended to the Delta
    table in few large commits, each serving batch's at most once.

    The serving batches' partitions stage every accepted change beside the stores
    (:class:`~streaming.stores.lake.StagedChanges`); :meth:`commit` (the job calls it every
    ``lake_trigger_seconds``) appends those of the batches Spark has committed since the last call
    as one commit, ``txnAppId`` = the serving query, ``txnVersion`` = the newest of them, then
    deletes them. So an event is read, decoded, deduplicated and transformed once for every store,
    a commit's files are large, and a Delta commit never delays a serving batch. A crash between
    the commit and the deletion leaves staged batches the lake holds: they are deleted, not
    appended again (the table's ``txnVersion`` says how far it holds).
    """

    def __init__(self, spark: SparkSession, plan: BatchPlan) -> None:
        self.spark, self.plan = spark, plan
        self.location = lake.ensure_table(spark, plan.settings, plan.namespace, plan.spec, plan.query)
        # The newest serving batch whose changes the lake holds (None: none yet).
        self.holds = lake.committed_batch(plan.settings, plan.namespace, plan.spec.name, plan.query)
        self._lock = threading.Lock()  # the job's timer and its last call at a stop never overlap
        if self.holds is not None:
            lake.drop_staged(plan.settings, plan.namespace, plan.query, self.holds)

    def commit(self, served: int | None) -> LakeCommit | None:
        """Append the staged changes of the serving batches up to ``served`` (the newest Spark has
        committed) that the lake does not hold; what it appended, or None when nothing was new."""
        plan = self.plan
        with self._lock:
            after = -1 if self.holds is None else self.holds
            if served is None or served <= after:
                return None
            started = time.perf_counter()
            staged = {b: keys for b, keys in lake.staged(plan.settings, plan.namespace, plan.query).items()
                      if after < b <= served}
            batches = sorted(staged)
            changes = 0
            if batches:
                rows = lake.read_staged(self.spark, plan.settings, [k for b in batches for k in staged[b]], plan.spec)
                lake.append(rows, self.location, plan.query, served)
                changes = lake.last_append_rows(plan.settings, plan.namespace, plan.spec.name)
                for batch_id in batches:  # committed; the staged objects not yet deleted
                    maybe_crash(plan, "lake", WriteToken(plan.query, batch_id, -1))
            self.holds = served
            if batches:
                lake.drop_staged(plan.settings, plan.namespace, plan.query, served)
            return LakeCommit(changes=changes, batches=(after + 1, served),
                              seconds=round(time.perf_counter() - started, 3))


# --- on the executors ------------------------------------------------------------------------

_open_sinks: dict[tuple, Sink] = {}  # per Python worker, reused by every task it runs


def _sinks(plan: BatchPlan) -> dict[str, Sink]:
    """This worker's open clients for the plan's stores, the lake's staging and its dead-letter topic."""
    makers = {store.name: (lambda store=store: store.sink(plan.settings, plan.namespace)) for store in plan.stores}
    makers["staged"] = lambda: lake.StagedChanges(plan.settings, plan.namespace)
    makers["dlq"] = lambda: DeadLetterSink(plan.settings, plan.topic)
    endpoints = plan.settings.model_dump_json()
    opened = {}
    for name in (*(s.name for s in plan.stores), *(["staged"] if plan.staged else []), "dlq"):
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
        writes = {store.name: (sinks[store.name], latest) for store in plan.stores}
        if plan.staged:  # even none: a rerun of the partition must replace what an earlier attempt staged
            writes["staged"] = (sinks["staged"], every_change)
        seconds.update(_write_concurrently(plan, writes, token))
        lap("stores")
        if plan.extra is not None:
            plan.extra(every_change, PartitionContext({s.name: sinks[s.name] for s in plan.stores}, token, plan.retry,
                                                      plan.namespace))
            lap("extra")
        maybe_crash(plan, "partition", token)
        totals.add({"rows": latest.num_rows, "changes": every_change.num_rows, "rejected": rejected.num_rows,
                    **seconds})
        if plan.lake:
            yield from every_change.to_batches()

    return write_partition


_threads: tuple[int, ThreadPoolExecutor] | None = None  # per Python worker: (size, pool), a thread per store


def _write_concurrently(plan: BatchPlan, writes: dict[str, tuple[Sink, pa.Table]],
                        token: WriteToken) -> dict[str, float]:
    """Each store's rows into it, all at once (name -> (store, rows)); each one's seconds.

    The stores' clients wait on their servers most of the time (and release the GIL meanwhile), so
    the partition takes as long as its slowest store rather than their sum. Every write is waited
    for before a failure is raised: no write of a failed partition goes on while its retry runs.
    """
    global _threads
    if len(writes) <= 1:
        return {f"s.{name}": _timed_write(plan, sink, name, rows, token) for name, (sink, rows) in writes.items()}
    if _threads is None or _threads[0] < len(writes):
        _threads = (len(writes), ThreadPoolExecutor(len(writes), thread_name_prefix="kappa-sink"))
    running = {name: _threads[1].submit(_timed_write, plan, sink, name, rows, token)
               for name, (sink, rows) in writes.items()}
    wait(running.values())
    for future in running.values():
        if future.exception() is not None:
            raise future.exception()
    return {f"s.{name}": future.result() for name, future in running.items()}


def _timed_write(plan: BatchPlan, sink: Sink, name: str, rows: pa.Table, token: WriteToken) -> float:
    started = time.perf_counter()
    sink.write_with_retries(rows, plan.spec, token, plan.retry)
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
