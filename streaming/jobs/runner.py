"""What every streaming job shares: Kafka -> decode -> dedupe -> transform -> (per batch) DLQ + sinks.

A job module supplies a :class:`JobDefinition` (its serving table and a pure ``transform`` of the
decoded rows); this module wires the streaming query around it: read with the native Kafka source,
decode in the JVM, drop duplicate ``event_id`` within a watermark, transform (:func:`prepare`), and
in ``foreachBatch`` send undecodable or invalid rows to ``<topic>.dlq``, keep the newest change per
key and write the batch to every sink, idempotently per (query, batch).

The transforms are applied to the stream itself, so their plan is built once per query and not
once per micro-batch (planning the transforms from Python cost a quarter of a second per batch).
Batch replay calls :func:`prepare` on a bounded read and :func:`process_batch` per chunk, unchanged.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Producer
from pydantic import BaseModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from settings import Settings
from streaming import decode as decoding
from streaming import migrations, sources
from streaming.sinks.cassandra import CassandraSink
from streaming.sinks.clickhouse import ClickHouseSink
from streaming.sinks.lake import LakeSink
from streaming.sinks.postgres import PostgresSink
from streaming.listener import MetricsListener
from streaming.tables import Table
from streaming.transforms import changes, dedupe
from streaming.transforms.validate import ERROR

log = logging.getLogger(__name__)
SINK_ORDER = ("lake", "clickhouse", "cassandra", "postgres")


class JobConfig(BaseModel):
    name: str                                  # the query's name: checkpoint folder, dedup tokens, metrics
    topic: str
    # PostgreSQL schema, ClickHouse database, Cassandra keyspace, lake prefix. Not the name of the
    # PostgreSQL role: a schema named like the role captures its unqualified tables (search_path).
    namespace: str = "serving"
    checkpoint_dir: str = ".stack/checkpoints" # local folder or s3a://bucket/prefix
    trigger_seconds: float = 1.0
    max_offsets_per_trigger: int | None = 100_000
    starting_offsets: str = "earliest"
    watermark: str = "10 minutes"              # a re-sent event_id arriving within this delay is dropped
    sinks: list[str] = list(SINK_ORDER)
    reference_refresh_s: float = 300.0         # how often reference data (dimensions) is re-read
    metrics_port: int = 0
    # Testing aid: "<sink>:<batch>" kills the process with SIGKILL right after that sink wrote that batch.
    crash_after: str | None = None

    @property
    def checkpoint(self) -> str:
        base = self.checkpoint_dir
        if not base.startswith(("s3a://", "file:/")):
            base = str(Path(base).resolve())
        return f"{base.rstrip('/')}/{self.name}"


@dataclass
class BatchContext:
    """What a job's transform may use besides the rows: settings, config, reference data.

    Reference data (small dimensions) are DataFrames cached in Spark. Every micro-batch is planned
    against the cache as it is then, so re-caching them (:meth:`JobRunner.refresh_reference`)
    changes what the next batches join with, without restarting the query.
    """

    spark: SparkSession
    settings: Settings
    config: JobConfig
    reference: dict[str, DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class JobDefinition:
    table: Table
    # decoded rows (the reader schema's fields at top level, plus Kafka's columns) -> the same rows
    # with the table's columns + _version + _deleted, and _error (null if valid; validate.check).
    # One row out per row in, undecodable rows (every field null) included, and no aggregation:
    # it runs on the stream, and accepted and rejected rows are collected in one pass.
    transform: Callable[[DataFrame, BatchContext], DataFrame]
    # optional extra writes from the batch's accepted changes (Arrow, e.g. features), given the sinks
    extra: Callable[[pa.Table, int, BatchContext, dict], None] | None = None
    # reference data, cached on start and re-cached every reference_refresh_s: name -> loader
    reference: dict[str, Callable[[BatchContext], DataFrame]] = field(default_factory=dict)
    # ordering columns that break _version ties in latest_per_key
    tie_break: tuple[str, ...] = ("event_id",)


def load_config(path: Path) -> JobConfig:
    return JobConfig.model_validate(tomllib.loads(path.read_text()))


def open_sinks(settings: Settings, config: JobConfig) -> dict:
    makers = {
        "lake": lambda: LakeSink(settings, config.namespace, config.name),
        "clickhouse": lambda: ClickHouseSink(settings, config.namespace, config.name),
        "cassandra": lambda: CassandraSink(settings, config.namespace),
        "postgres": lambda: PostgresSink(settings, config.namespace),
    }
    unknown = set(config.sinks) - set(makers)
    if unknown:
        raise ValueError(f"job {config.name}: unknown sinks {sorted(unknown)} (config 'sinks'); known: {SINK_ORDER}")
    return {name: makers[name]() for name in SINK_ORDER if name in config.sinks}


class DeadLetters:
    """Rejected source records to ``<topic>.dlq``, unchanged, with the reason and position as headers.

    Produced from the driver: rejected rows are few, and this keeps a batch to one Spark job.
    """

    def __init__(self, settings: Settings) -> None:
        self._producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                                   "enable.idempotence": True, "acks": "all", **settings.kafka.client_config})

    def send(self, rejected: pa.Table, topic: str) -> int:
        failures: list = []
        for row in rejected.to_pylist():
            self._producer.produce(f"{topic}.dlq", key=row["key"], value=row["value"], headers=[
                ("error", row[ERROR].encode()),
                ("source.position", f"{row['topic']}[{row['partition']}]@{row['offset']}".encode()),
                ("original.topic", row["topic"].encode()),
            ], on_delivery=lambda err, _msg: err and failures.append(err))
        if self._producer.flush(60) or failures:
            raise RuntimeError(f"dead letters of {topic} were not acknowledged: {failures[:1] or 'timeout'}")
        return rejected.num_rows


# The Kafka record a rejected row goes to the DLQ as, with its position.
RECORD_COLUMNS = ["key", "value", "topic", "partition", "offset"]


def prepare(decoded: DataFrame, job: JobDefinition, ctx: BatchContext) -> DataFrame:
    """Decoded Kafka rows (:meth:`Decoder.decode`) -> what :func:`process_batch` takes: the table's
    columns and ``_error`` (undecodable, or the rule the row broke); a rejected row also keeps its
    original record for the DLQ. Pure, and the same for a stream and for a bounded replay."""
    records = decoded.where(F.col("value").isNotNull())  # a Kafka tombstone carries nothing to decode or reject
    rows = records.select(*RECORD_COLUMNS, "timestamp", decoding.SCHEMA_ID, decoding.DECODE_ERROR,
                          f"{decoding.DECODED}.*")
    checked = job.transform(rows, ctx)
    error = F.coalesce(F.col(decoding.DECODE_ERROR), F.col(ERROR))
    original = [F.when(error.isNotNull(), F.col(c)).alias(c) for c in [*RECORD_COLUMNS, decoding.SCHEMA_ID]]
    return checked.select(*job.table.all_columns, *original, error.alias(ERROR))


def process_batch(batch: DataFrame, batch_id: int, job: JobDefinition, ctx: BatchContext, sinks: dict,
                  dead_letters: DeadLetters) -> dict:
    """One micro-batch (or replay chunk) of :func:`prepare`'d rows into the DLQ and every sink.

    One Spark job: the batch is collected once as Arrow; the split into accepted and rejected rows,
    the DLQ and the sinks happen in the driver.
    """
    config = ctx.config
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 3)
        clock = now

    everything = batch.toArrow()
    lap("spark")
    accepted = pc.is_null(everything[ERROR])
    refused = everything.filter(pc.invert(accepted))
    unknown_ids = refused.filter(pc.starts_with(refused[ERROR], decoding.UNKNOWN_ID))[decoding.SCHEMA_ID]
    unknown = sorted(pc.unique(unknown_ids).to_pylist())
    if unknown:
        raise decoding.UnknownSchemaIds(config.topic, unknown)  # before any write: the batch reruns
    if refused.num_rows:
        dead_letters.send(refused, config.topic)
    # The lake archives every change; the serving stores take the newest per key.
    every_change = everything.filter(accepted).select(job.table.all_columns)
    latest = changes.latest_per_key_arrow(every_change, list(job.table.key), list(job.tie_break))
    lap("driver")
    for name, sink in sinks.items():
        sink.write(every_change if name == "lake" else latest, batch_id, job.table)
        lap(name)
        _maybe_crash(config, name, batch_id)
    if job.extra is not None:
        job.extra(every_change, batch_id, ctx, sinks)
        lap("extra")
    return {"rows": latest.num_rows, "changes": every_change.num_rows, "rejected": refused.num_rows,
            "seconds": timings}


def _maybe_crash(config: JobConfig, sink: str, batch_id: int) -> None:
    if config.crash_after and config.crash_after == f"{sink}:{batch_id}":
        log.warning("crash_after %s: killing the process", config.crash_after)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


_listening: set[int] = set()


def _export_metrics(spark: SparkSession) -> None:
    """One MetricsListener per SparkSession: progress of every query -> Prometheus."""
    if id(spark) not in _listening:
        spark.streams.addListener(MetricsListener())
        _listening.add(id(spark))


class JobRunner:
    """Runs one job's streaming query until stopped, restarting it when new writer schemas appear."""

    def __init__(self, job: JobDefinition, config: JobConfig, settings: Settings, spark: SparkSession) -> None:
        self.job, self.config, self.settings, self.spark = job, config, settings, spark
        self.registry = SchemaRegistryClient({"url": settings.registry.url})
        self.ctx = BatchContext(spark, settings, config)
        self._stop = threading.Event()
        self._query = None
        self._reference_loaded = 0.0
        self.dead_letters = DeadLetters(settings)
        _export_metrics(spark)

    def refresh_reference(self, force: bool = False) -> None:
        """(Re-)cache the job's reference data when ``reference_refresh_s`` has passed.

        Called between micro-batches, so a batch never sees half-refreshed data: each joins with
        the data of the last refresh before it started.
        """
        if not self.job.reference or (not force and
                                      time.monotonic() - self._reference_loaded < self.config.reference_refresh_s):
            return
        for name, loader in self.job.reference.items():
            frame = self.ctx.reference.get(name)
            if frame is None:
                frame = self.ctx.reference[name] = loader(self.ctx)
            else:
                frame.unpersist(blocking=True)
            frame.cache().count()
        self._reference_loaded = time.monotonic()

    def _release_reference(self) -> None:
        for frame in self.ctx.reference.values():
            frame.unpersist()
        self.ctx.reference.clear()

    def _stream(self, decoder: decoding.Decoder, sinks: dict, available_now: bool):
        raw = sources.read_stream(self.spark, self.settings, topics=[self.config.topic],
                                  starting_offsets=self.config.starting_offsets,
                                  max_offsets_per_trigger=self.config.max_offsets_per_trigger)
        decoded = decoder.decode(raw)
        # Duplicates (same event_id) are re-sends that arrive close together, so the watermark runs
        # on arrival time (the Kafka record's timestamp), not event time: events that are old by
        # event time (backfills, late sources) are never dropped as late. Undecodable rows have
        # no event_id and are never duplicates.
        keyed = (decoded
                 .withColumn("_dedupe_id", F.coalesce(F.col(f"{decoding.DECODED}.event_id"),
                                                      F.format_string("%s/%d/%d", "topic", "partition", "offset")))
                 .withColumn("_dedupe_time", F.col("timestamp")))
        unique_rows = dedupe.within_watermark(keyed, "_dedupe_id", "_dedupe_time", self.config.watermark)
        prepared = prepare(unique_rows, self.job, self.ctx)

        def each_batch(batch: DataFrame, batch_id: int) -> None:
            started = time.perf_counter()
            result = process_batch(batch, batch_id, self.job, self.ctx, sinks, self.dead_letters)
            log.info("batch %d: %d rows in %.2fs %s", batch_id, result["rows"], time.perf_counter() - started,
                     result["seconds"])
            self.refresh_reference()  # for the next batches

        writer = (prepared.writeStream.queryName(self.config.name).foreachBatch(each_batch)
                  .option("checkpointLocation", self.config.checkpoint))
        writer = writer.trigger(availableNow=True) if available_now else \
            writer.trigger(processingTime=f"{self.config.trigger_seconds} seconds")
        return writer.start()

    def run(self, available_now: bool = False) -> None:
        """Until SIGTERM/stop() (or, with ``available_now``, until the topic's current end)."""
        migrations.postgres(self.settings, self.config.namespace)
        migrations.clickhouse(self.settings, self.config.namespace)
        migrations.cassandra(self.settings, self.config.namespace)
        sinks = open_sinks(self.settings, self.config)
        extra_ids: list[int] = []
        try:
            self.refresh_reference(force=True)
            while not self._stop.is_set():
                decoder = decoding.Decoder.from_registry(self.registry, self.config.topic, extra_ids)
                self._query = self._stream(decoder, sinks, available_now)
                try:
                    while self._query.isActive and not self._stop.is_set():
                        self._query.awaitTermination(1)
                    if self._query.exception() is None:
                        return
                    raise self._query.exception()
                except Exception as exc:  # pyspark wraps the foreachBatch error: look for ours in the text
                    text = str(exc)
                    if "UnknownSchemaIds" not in text and "not known to the decoder" not in text:
                        raise
                    log.info("new writer schema ids in %s: refreshing from the registry", self.config.topic)
                    extra_ids = _ids_in(text)
        finally:
            if self._query is not None and self._query.isActive:
                self._query.stop()
            for sink in sinks.values():
                sink.close()
            self._release_reference()

    def stop(self) -> None:
        self._stop.set()
        if self._query is not None and self._query.isActive:
            self._query.stop()


def _ids_in(text: str) -> list[int]:
    import re

    match = re.search(r"writer schema ids \[([\d, ]+)\]", text)
    return [int(i) for i in match.group(1).split(",")] if match else []
