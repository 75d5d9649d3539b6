"""The live job's runner: its streaming queries, their restarts, health and metrics.

A pipeline file (:mod:`streaming.jobs.pipeline`) makes a :class:`~streaming.plan.JobDefinition`:
its serving table's name and key, and a pure ``transform`` of the decoded rows. The plan of a batch
(:mod:`streaming.plan`: decode, drop duplicate ``event_id`` within a watermark, transform, derive
the table) is the one replay uses too; the table is created or evolved in every store at the start
of each query (:meth:`streaming.stores.base.Store.ensure_table`), so a new field in the topic's
schema becomes a new column. This module wires the job's streaming queries around it, reading with
the native Kafka source. One query (named after the job, ``trigger_seconds``, its checkpoint
``<checkpoint_dir>/<name>``) and, for the lake, a commit on its own clock:

- each micro-batch, in ``foreachBatch``, :class:`~streaming.stores.writer.BatchWriter` writes the
  DLQ, ClickHouse, Cassandra and PostgreSQL from the executors, idempotently per (query, batch,
  partition), and stages the batch's accepted changes for the lake beside them;
- every ``lake_trigger_seconds`` a thread of the job has :class:`~streaming.stores.writer.LakeWriter`
  append the staged changes of the batches Spark has committed to the Delta table as one commit,
  so a Delta commit never sits in the serving stores' path and an event is decoded once.

The driver plans and keeps counts; no batch is collected into it. The transforms are applied to the
stream itself, so their plan is built once per query and not once per micro-batch (planning the
transforms from Python cost a quarter of a second per batch). Batch replay calls :func:`prepare` on
a bounded read and the same writer per chunk, unchanged.

Failures: a sink retries inside the task (``sink_retry_*``); when that is spent the batch fails,
and the job restarts the query from its checkpoint after ``restart_backoff_s`` (doubling up to a
``max_restart_backoff_s``), at most ``max_restarts`` times in a row without a batch succeeding; then it exits with
status 1 for its supervisor. A failure of either query restarts both. A table the stores cannot take
(a changed column type or key) exits with status 1 at once: no restart can fix it. SIGTERM lets the batch in flight finish, then stops with status 0.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable

from confluent_kafka.schema_registry import SchemaRegistryClient
from pyspark.sql import DataFrame, SparkSession

from kappa.errors import KappaError
from kappa.settings import Settings
from monitoring.endpoint import Health
from streaming import decode as decoding
from streaming import locks, metrics, sources, versions
from streaming.jobs import failures
from streaming.listener import MetricsListener
from streaming.plan import (
    BatchContext,
    JobConfig,
    JobDefinition,
    batch_plan,
    prepare,
    prepare_stores,
    unique_events,
)
from streaming.stores import archive
from streaming.stores.base import WriteToken
from streaming.stores.writer import BatchResult, BatchWriter, LakeCommit, LakeWriter, maybe_crash
from streaming.tables import Table, TableError

log = logging.getLogger(__name__)


def fixed_partitions(spark: SparkSession, checkpoint: str, wanted: int | None) -> int:
    """The sink partitions of a checkpoint: recorded by its first run, kept by every later one.

    A batch rerun after a crash must be cut into the same partitions as before, or the
    (query, batch, partition) tokens would name different rows.
    """
    jvm = spark.sparkContext._jvm
    fs, path = _hadoop_path(spark, f"{checkpoint}/sink-partitions.json")
    if fs.exists(path):
        stream = fs.open(path)
        try:
            recorded = json.loads(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))["sink_partitions"]
        finally:
            stream.close()
        if wanted is not None and wanted != recorded:
            log.warning("sink_partitions = %d is ignored: checkpoint %s was started with %d (delete it to change)",
                        wanted, checkpoint, recorded)
        return recorded
    chosen = wanted or spark.sparkContext.defaultParallelism
    out = fs.create(path, True)
    try:
        out.write(bytearray(json.dumps({"sink_partitions": chosen}).encode()))
    finally:
        out.close()
    return chosen


def _hadoop_path(spark: SparkSession, path: str):
    """(its Hadoop file system, the Hadoop path) of a checkpoint file: local or s3a://, as Spark sees it."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def _exists(spark: SparkSession, path: str) -> bool:
    fs, hadoop_path = _hadoop_path(spark, path)
    return fs.exists(hadoop_path)


def _last_batch(spark: SparkSession, checkpoint: str) -> int | None:
    """The newest batch Spark committed in a query's checkpoint (its ``commits`` log), or None."""
    fs, commits = _hadoop_path(spark, f"{checkpoint}/commits")
    if not fs.exists(commits):
        return None
    names = [status.getPath().getName() for status in fs.listStatus(commits)]
    return max((int(name) for name in names if name.isdigit()), default=None)


class StopRequested(KappaError, RuntimeError):
    """Raised into a batch that Spark started after the job was asked to stop (it writes nothing)."""


class JobFailed(KappaError, RuntimeError):
    """The job gave up: after ``max_restarts``, or at once when the stores cannot take the table
    (:class:`~streaming.tables.TableError`); the message is the last failure's description."""


_listening: set[int] = set()
POOL = "spark.scheduler.pool"  # the fair scheduler pool (streaming/scheduler_pools.xml) of a thread's jobs
HOLD_CHECK_S = 5.0  # how often a job held by an empty reference looks again
VERSION_CHECK_S = 5.0  # how often a job writing a serving version asks whether a cut-over superseded it


def _export_metrics(spark: SparkSession, settings: Settings) -> None:
    """One MetricsListener per SparkSession: progress of every query -> Prometheus and its Kafka group."""
    if id(spark) not in _listening:
        spark.streams.addListener(MetricsListener(settings.kafka))
        _listening.add(id(spark))


class JobRunner:
    """Runs one job's streaming query until stopped: restarts it when new writer schemas appear or a
    batch failed (bounded), stops it between batches on :meth:`stop`."""

    def __init__(self, job: JobDefinition, config: JobConfig, settings: Settings, spark: SparkSession,
                 health: Health | None = None,
                 on_result: Callable[[BatchResult | LakeCommit], None] | None = None) -> None:
        self.job, self.config, self.settings, self.spark = job, config, settings, spark
        self.on_result = on_result  # told each written batch and lake commit (the bench's account of them)
        # What the job's /healthz and /readyz answer: alive while this loop turns, ready while its query runs.
        self.health = health or Health()
        self.registry = SchemaRegistryClient({"url": settings.registry.url})
        self.ctx = BatchContext(spark, settings, config)
        self.servers = failures.endpoints(settings, config.sinks, bool(job.reference))
        self._stop = threading.Event()
        self._batch_lock = threading.Lock()  # held while a serving batch runs; stop() waits for it
        self._stopping = False
        self._query = None                     # the job's query: ClickHouse, Cassandra, PostgreSQL, DLQ, staging
        self._lake: LakeWriter | None = None   # commits the staged changes, when the lake is one of the sinks
        self._lake_timer: threading.Thread | None = None
        self._lake_stop = threading.Event()
        self._lake_failure: BaseException | None = None
        self._archive = None                   # the archiver query, when config.archive
        self._archive_lock = None              # held while this job keeps the pipeline's raw archive
        self._archive_waiting = False
        self._archive_tried = float("-inf")
        self._reference_loaded = 0.0
        self._batch_id: int | None = None
        self._served: int | None = None        # the newest batch this process's query wrote to every store
        self._unknown: decoding.UnknownSchemaIds | None = None
        self._good_batches = 0
        self._migrated = False
        self._ensured: dict[str, Table] = {}   # store -> the table last created/evolved there
        self._version_checked = float("-inf")
        _export_metrics(spark, settings)
        metrics.start(config.name, config.topic, config.sinks)

    def refresh_reference(self, force: bool = False) -> list[str]:
        """(Re-)cache the job's reference data when ``reference_refresh_s`` has passed; the names
        of the references that have no rows.

        Called between micro-batches, so a batch never sees half-refreshed data: each joins with
        the data of the last refresh before it started.
        """
        if not self.job.reference or (not force and
                                      time.monotonic() - self._reference_loaded < self.config.reference_refresh_s):
            return []
        empty = []
        for name, loader in self.job.reference.items():
            frame = self.ctx.reference.get(name)
            if frame is None:
                frame = self.ctx.reference[name] = loader(self.ctx)
            else:
                frame.unpersist(blocking=True)
            if frame.cache().count() == 0:
                empty.append(name)
        self._reference_loaded = time.monotonic()
        return empty

    def _load_reference(self) -> None:
        """The first load of the reference data; waits while a ``hold`` reference has no rows."""
        while True:
            empty = self.refresh_reference(force=True)
            held = [name for name in empty if name in self.job.hold]
            if not held or self._stop.is_set():
                for name in empty:
                    log.warning("job %s: reference %s has no rows: rows join with nulls until it has (on_missing "
                                "= \"hold\" waits for it instead)", self.config.name, name)
                return
            log.warning("job %s holds: reference %s has no rows yet; it starts when it has (checked every %.0f s)",
                        self.config.name, ", ".join(held), HOLD_CHECK_S)
            self._release_reference()
            self.health.not_ready(f"waiting for rows in reference {', '.join(held)} (on_missing = hold)")
            self._stop.wait(HOLD_CHECK_S)

    def _release_reference(self) -> None:
        for frame in self.ctx.reference.values():
            frame.unpersist()
        self.ctx.reference.clear()

    def _decoder(self, extra_ids: list[int]) -> decoding.Decoder:
        registry = next(s for s in self.servers if s.setting == "registry.url")
        try:
            return decoding.Decoder.from_registry(self.registry, self.config.topic, extra_ids)
        except Exception as exc:
            if registry.reachable():
                raise
            raise failures.ServerUnavailable(registry, f"reading the writer schemas of {self.config.topic}", exc) from exc

    def _prepared(self, decoder: decoding.Decoder) -> tuple[Table, DataFrame]:
        """The job's stream up to :func:`prepare`: read, decode, dedupe, transform."""
        raw = sources.read_stream(self.spark, self.settings, topics=[self.config.topic],
                                  starting_offsets=self.config.starting_offsets,
                                  max_offsets_per_trigger=self.config.max_offsets_per_trigger)
        return prepare(unique_events(decoder.decode(raw), self.config.watermark), self.job, self.ctx)

    def _note_unknown_ids(self, exc: BaseException) -> None:
        ids = decoding.unknown_ids(exc)
        if ids:
            self._unknown = decoding.UnknownSchemaIds(self.config.topic, ids)

    def _start_serving(self, prepared: DataFrame, writer: BatchWriter, available_now: bool):
        def each_batch(batch: DataFrame, batch_id: int) -> None:
            with self._batch_lock:
                if self._stopping:
                    raise StopRequested(f"job {self.config.name} is stopping: batch {batch_id} is left for the next run")
                if self._superseded():
                    raise StopRequested(f"job {self.config.name} was superseded: batch {batch_id} is not written")
                self._batch_id = batch_id
                try:
                    result = writer.write(batch, batch_id)
                except Exception as exc:
                    self._note_unknown_ids(exc)
                    raise
                maybe_crash(writer.plan, "served", WriteToken(writer.plan.query, batch_id, -1))
                self._served = batch_id
                self._good_batches += 1
                self._batch_id = None
            log.info("batch %d: %d rows, %d changes, %d rejected in %.2fs", batch_id, result.rows, result.changes,
                     result.rejected, result.seconds, extra={
                         "batch": batch_id, "rows": result.rows, "changes": result.changes,
                         "rejected": result.rejected, "seconds": round(result.seconds, 3),
                         "partition_seconds": result.partition_seconds})
            metrics.record_batch(self.config.name, self.config.topic, self.config.sinks, result)
            if self.on_result is not None:
                self.on_result(result)
            try:
                self.refresh_reference()  # for the next batches
            except Exception as exc:  # keep joining with the cached data; try again after the next batch
                metrics.ERRORS.labels(self.config.name, "reference").inc()
                log.warning("reference data of %s not refreshed (%s: %s); the cached data stays in use",
                            self.config.name, type(exc).__name__, str(exc).splitlines()[0][:300])

        context = self.spark.sparkContext
        context.setLocalProperty(POOL, "serving")  # the query's thread inherits it: its batches' jobs go first
        try:
            return self._start_query(prepared.writeStream.queryName(self.config.name).foreachBatch(each_batch),
                                     self.config.checkpoint, self.config.trigger_seconds, available_now)
        finally:
            context.setLocalProperty(POOL, None)

    def _commit_lake(self) -> None:
        """The lake's commit of what the serving batches staged since the last one (LakeWriter.commit)."""
        result = self._lake.commit(_last_batch(self.spark, self.config.checkpoint))
        if result is not None:
            first, last = result.batches
            log.info("lake: %d changes of batches %d-%d appended in %.2fs", result.changes, first, last,
                     result.seconds, extra={"lake_changes": result.changes, "batches": [first, last],
                                            "seconds": round(result.seconds, 3)})
            metrics.record_lake_batch(self.config.name, result)
            if self.on_result is not None:
                self.on_result(result)

    def _lake_clock(self) -> None:
        """The lake's commits, one starting every ``lake_trigger_seconds`` while the query runs (at
        once after one that took longer), like a trigger; a failure is kept for the job's loop, which
        stops and restarts everything as for a failed batch."""
        self.spark.sparkContext.setLocalProperty(POOL, "lake")  # behind the serving batches' tasks
        due = time.monotonic() + self.config.lake_trigger_seconds
        while not self._lake_stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + self.config.lake_trigger_seconds, time.monotonic())
            try:
                self._commit_lake()
            except BaseException as exc:  # noqa: BLE001 (handed to the job's loop)
                self._note_unknown_ids(exc)
                self._lake_failure = exc
                return

    def _start_lake_clock(self) -> None:
        self._lake_stop.clear()
        self._lake_failure = None
        self._lake_timer = threading.Thread(target=self._lake_clock, name=f"{self.config.name}-lake", daemon=True)
        self._lake_timer.start()

    def _stop_lake_clock(self) -> None:
        self._lake_stop.set()
        if self._lake_timer is not None and self._lake_timer is not threading.current_thread():
            self._lake_timer.join()  # a commit in flight ends first
        self._lake_timer = None

    @staticmethod
    def _start_query(writer, checkpoint: str, trigger_seconds: float, available_now: bool):
        writer = writer.option("checkpointLocation", checkpoint)
        writer = writer.trigger(availableNow=True) if available_now else \
            writer.trigger(processingTime=f"{trigger_seconds} seconds")
        return writer.start()

    def _lake_writer(self, table: Table) -> LakeWriter:
        """The job's lake writer; refuses a lake table that holds batches of this query when the query
        has no checkpoint: its batch ids would start again at 0, and the lake would skip them."""
        writer = LakeWriter(self.spark, batch_plan(self.job, self.config, self.settings, table, self._crash_pids(),
                                                   live=True))
        if writer.holds is not None and not _exists(self.spark, f"{self.config.checkpoint}/metadata"):
            raise TableError(
                f"pipeline {self.config.name}: the lake table {writer.location} holds batches 0-{writer.holds} of "
                f"query {self.config.name}, but the query's checkpoint {self.config.checkpoint} does not exist "
                "(deleted, or checkpoint_dir changed). Restore the checkpoint, or rebuild the pipeline into a new "
                "version (make rebuild JOB=...), or delete the lake table and let the job write its history again "
                "from starting_offsets")
        return writer

    def _crash_pids(self) -> tuple[int, ...]:
        if not self.config.crash_after:
            return ()
        return os.getpid(), self.spark.sparkContext._jvm.ProcessHandle.current().pid()

    def _queries(self) -> list:
        return [q for q in (self._query, self._archive) if q is not None]

    def _run_query(self, extra_ids: list[int], available_now: bool) -> bool:
        """Start the job's queries and wait for them. True when they ended by themselves
        (available-now) or were stopped; a failure of any one stops the others and is raised."""
        self._version_checked = float("-inf")
        if self._superseded():
            return True
        decoder = self._decoder(extra_ids)
        if not self.ctx.reference:
            self._load_reference()
            if self._stop.is_set():
                return True
        try:
            return self._start_and_watch(decoder, available_now)
        except BaseException:
            self._stop_queries()  # none outlives a failure: a restart starts them all again
            raise

    def _start_and_watch(self, decoder: decoding.Decoder, available_now: bool) -> bool:
        table, prepared = self._prepared(decoder)
        # At every query start: a restart for a new writer schema may bring columns.
        prepare_stores(self.job, self.config, self.settings, table, self._ensured, migrate=not self._migrated)
        self._migrated = True
        self._lake = self._lake_writer(table) if "lake" in self.config.sinks else None
        partitions = fixed_partitions(self.spark, self.config.checkpoint, self.config.sink_partitions)
        writer = BatchWriter(self.spark, batch_plan(self.job, self.config, self.settings, table, self._crash_pids(),
                                                    live=True), partitions)
        self._query = self._start_serving(prepared, writer, available_now)
        if self._lake is not None:
            self._start_lake_clock()
        self.health.ready()
        self._start_archive(available_now)
        while not self._stop.is_set() and self._query.isActive:
            try:
                self._query.awaitTermination(1)
            except Exception:  # noqa: S110 (it failed: raised below, once the others are stopped)
                pass
            self.health.beat()
            self._superseded()  # also when no batch runs: an idle job stops at its cut-over too
            if self._archive is None and self.config.archive and not available_now:
                self._start_archive(available_now)  # its lock may be free now
            self._raise_failure()
        if self._stop.is_set():
            with self._batch_lock:  # the batch in flight finishes first
                self._stopping = True
            self._await_recorded()
            self._stop_queries()
            self._last_lake_commit()
            return True
        self._raise_failure()
        if self._lake is not None:
            self._stop_lake_clock()
            self._commit_lake()  # an available-now run's lake holds all it served
        if self._archive is not None and available_now:
            try:
                self._archive.awaitTermination()  # the archive reaches the same end of the topic
            except Exception:  # noqa: S110 (raised just below)
                pass
            self._raise_failure()
        return True

    def _raise_failure(self) -> None:
        """The failure of a query that ended, or of the lake's last commit, after stopping the rest:
        they restart together, each from its own checkpoint (the lake from its table's)."""
        for query in self._queries():
            if not query.isActive and query.exception() is not None:
                self._stop_queries()
                raise query.exception()
        if self._lake_failure is not None:
            self._stop_queries()
            raise self._lake_failure

    def _await_recorded(self, timeout_s: float = 30.0) -> None:
        """At a stop, until Spark recorded the last served batch in the query's commits log: it
        writes that entry just after the batch returns, and a stop in between would leave the batch
        out of the lake's last commit (which takes only recorded batches) and rerun it at the next
        start."""
        deadline = time.monotonic() + timeout_s
        while self._served is not None and self._query is not None and self._query.isActive:
            recorded = _last_batch(self.spark, self.config.checkpoint)
            if (recorded is not None and recorded >= self._served) or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def _last_lake_commit(self) -> None:
        """At a stop: the lake takes what the last batches staged, so a stopped job's lake is complete
        (a cut-over's previous version, a job stopped for good). A failure waits for the next start."""
        if self._lake is None:
            return
        try:
            self._commit_lake()
        except Exception as exc:  # the staged changes stay; the next start of the job commits them
            log.warning("job %s: the lake's last commit failed (%s: %s); its next start commits the staged changes",
                        self.config.name, type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")

    def _stop_queries(self) -> None:
        self._stop_lake_clock()
        for query in self._queries():
            try:
                if query.isActive:
                    query.stop()
            except Exception as exc:  # the others are stopped all the same
                log.warning("job %s: stopping query %s failed (%s: %s)", self.config.name, query.name,
                            type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")

    def _start_archive(self, available_now: bool) -> None:
        """The archiver query beside the job's (again, if it stopped or failed).

        The archive is the pipeline's, not a version's: in the serving namespace, with the pipeline's
        own checkpoint, kept by one job at a time, whichever holds its lock. So a Kappa rebuild's
        shadow job takes it over where the old job left it once that one stopped (it asks again
        every VERSION_CHECK_S), and no record is archived twice."""
        if not self.config.archive or (self._archive is not None and self._archive.isActive):
            return
        owner = self.config.serving.pipeline if self.config.serving else self.config.name
        namespace = self.config.serving.namespace if self.config.serving else self.config.namespace
        if self._archive_lock is None:
            if time.monotonic() - self._archive_tried < VERSION_CHECK_S:
                return
            self._archive_tried = time.monotonic()
            self._archive_lock = locks.try_hold(self.settings, locks.ARCHIVE, f"{namespace}.{owner}",
                                                f"kappa archive {namespace}.{owner}")
            if self._archive_lock is None:
                if not self._archive_waiting:
                    log.info("job %s: another job of pipeline %s keeps its raw archive; this one takes it over when "
                             "that one stops", self.config.name, owner)
                self._archive_waiting = True
                return
        self._archive = archive.start(self.spark, self.settings, name=owner, topic=self.config.topic,
                                      namespace=namespace,
                                      checkpoint=self.config.model_copy(update={"name": owner}).checkpoint,
                                      starting_offsets=self.config.starting_offsets,
                                      trigger_seconds=self.config.trigger_seconds, available_now=available_now)

    def run(self, available_now: bool = False) -> None:
        """Until SIGTERM/stop() (or, with ``available_now``, until the topic's current end).

        Raises :class:`JobFailed` after ``max_restarts`` failed restarts in a row.
        """
        extra_ids: list[int] = []
        restarts = 0
        try:
            while not self._stop.is_set():
                self._unknown = None
                self._batch_id = None
                good_before = self._good_batches
                try:
                    if self._run_query(extra_ids, available_now):
                        return
                except TableError as exc:  # the stores cannot take the schema: restarting cannot help
                    metrics.ERRORS.labels(self.config.name, "schema").inc()
                    log.error("%s. The job exits with status 1: fix the schema or the job's config, then start it "
                              "again", exc)
                    raise JobFailed(str(exc)) from None
                except Exception as exc:
                    if self._stop.is_set():
                        return
                    if self._unknown is not None:
                        log.info("new writer schema ids %s in %s: refreshing from the registry", self._unknown.ids,
                                 self.config.topic)
                        extra_ids = sorted(set(extra_ids) | set(self._unknown.ids))
                        continue
                    restarts = 1 if self._good_batches > good_before else restarts + 1
                    metrics.ERRORS.labels(self.config.name, "batch").inc()
                    reason = failures.describe(exc, self._failed_batch(), self.servers)
                    if restarts > self.config.max_restarts:
                        log.error("%s. Giving up after %d restarts in a row (max_restarts): the job exits with "
                                  "status 1 for its supervisor to restart it", reason, self.config.max_restarts)
                        raise JobFailed(reason) from None
                    wait = min(self.config.max_restart_backoff_s, self.config.restart_backoff_s * 2 ** (restarts - 1))
                    log.error("%s. Restarting the query from its checkpoint in %.0f s (restart %d of %d); "
                              "nothing is lost or written twice", reason, wait, restarts, self.config.max_restarts)
                    self.health.not_ready(f"restarting in {wait:.0f} s (restart {restarts} of "
                                          f"{self.config.max_restarts}): {reason}")
                    self._stop.wait(wait)
        finally:
            self._stop_queries()
            if self._archive_lock is not None:
                self._archive_lock.close()  # another job of the pipeline may keep the archive now
                self._archive, self._archive_lock = None, None
            self._release_reference()

    def _superseded(self) -> bool:
        """Whether a cut-over made the version the job writes a previous one (looked up at most every
        VERSION_CHECK_S); if so the job stops, with status 0: its work is done. A shadow version's job
        (the Kappa rebuild's) goes on: it becomes the one readers see at its cut-over."""
        serving = self.config.serving
        if serving is None or time.monotonic() - self._version_checked < VERSION_CHECK_S:
            return False
        self._version_checked = time.monotonic()
        try:
            known = versions.listing(self.settings, serving.namespace, serving.pipeline)
        except Exception as exc:  # the record is read again in VERSION_CHECK_S; writing goes on meanwhile
            log.warning("job %s: the serving versions record was not read (%s: %s)", self.config.name,
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            return False
        own = next((v for v in known if v.number == serving.number), None)
        if own is None or own.state in ("shadow", "active"):
            return False
        current = next((v for v in known if v.state == "active"), None)
        log.warning("job %s writes version %d of pipeline %s, which is %s: version %s is the one readers see since "
                    "%s. The job stops; its tables stay until kappa versions --drop-old", self.config.name,
                    serving.number, serving.pipeline, own.state, current.number if current else "?",
                    f"{current.activated_at:%Y-%m-%d %H:%M:%S %Z}" if current and current.activated_at else "now")
        self._stop.set()
        return True

    def _failed_batch(self) -> int | None:
        """The batch that was running when the query failed (None: it failed before its first batch)."""
        if self._batch_id is not None:
            return self._batch_id
        progress = self._query.lastProgress if self._query is not None else None
        return progress["batchId"] + 1 if progress else None

    def stop(self) -> None:
        """Ask the job to stop after the batch in flight (safe from a signal handler)."""
        self._stop.set()
