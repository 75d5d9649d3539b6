"""The plan of a pipeline, the same for the live job, a replay and the rebuild: what a job is
(:class:`JobConfig`, :class:`JobDefinition`), what a batch sees (:class:`BatchContext`), the decoded
rows made into the serving table and the rows the stores take (:func:`unique_events`,
:func:`prepare`), and what the executors need to write them (:func:`batch_plan`).

Everything here is a DataFrame -> DataFrame function or a value, planned on the driver; the one
step with I/O is :func:`prepare_stores`, which every runner takes before its first batch (each
store's table made or evolved through the store's own interface). The runners
(:mod:`streaming.jobs.runner` for the live job, :mod:`batch_replay.replay` for a bounded range)
only decide where the rows come from and when a batch runs.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from confluent_kafka.schema_registry import SchemaRegistryClient
from pydantic import BaseModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappa.settings import Settings
from streaming import decode as decoding
from streaming import sources, stores, versions
from streaming.stores.base import RetryPolicy, migration_files
from streaming.stores.dead_letters import RECORD_COLUMNS
from streaming.stores.writer import BatchPlan, PartitionContext
from streaming.tables import Table, derive
from streaming.transforms import dedupe
from streaming.transforms.validate import ERROR
from streaming.versions import ServingVersion


class JobConfig(BaseModel):
    name: str                                  # the query's name: checkpoint folder, dedup tokens, metrics
    topic: str
    # PostgreSQL schema, ClickHouse database, Cassandra keyspace, lake prefix. Not the name of the
    # PostgreSQL role: a schema named like the role captures its unqualified tables (search_path).
    namespace: str = "serving"
    checkpoint_dir: str = ".stack/checkpoints" # local folder or s3a://bucket/prefix
    trigger_seconds: float = 1.0               # the serving query's: ClickHouse, Cassandra, PostgreSQL, the DLQ
    max_offsets_per_trigger: int | None = 100_000
    # How often the serving batches' staged changes are committed to the lake (the change history in
    # Delta): a Delta commit never sets the serving stores' pace, and the lake gets few large files.
    lake_trigger_seconds: float = 30.0
    starting_offsets: str = "earliest"
    watermark: str = "10 minutes"              # a re-sent event_id arriving within this delay is dropped
    sinks: list[str] = list(stores.names())
    # Partitions a batch is cut into by key for the sinks (parallel writers). Fixed by the first run
    # of a checkpoint, like spark.sql.shuffle.partitions; default: Spark's default parallelism.
    sink_partitions: int | None = None
    sink_retry_attempts: int = 6               # per partition write, before the batch fails
    sink_retry_backoff_s: float = 0.5          # first wait; doubles up to sink_retry_max_backoff_s
    sink_retry_max_backoff_s: float = 8.0
    max_restarts: int = 10                     # query restarts in a row without a good batch, then exit 1
    restart_backoff_s: float = 5.0             # first wait before a restart; doubles up to max_restart_backoff_s
    max_restart_backoff_s: float = 60.0
    reference_refresh_s: float = 300.0         # how often reference data (dimensions) is re-read
    # Keep the raw archive: every record of the topic, as it arrived, in the lake (streaming.stores.archive),
    # written by a second query beside the job's; what batch replay reads once Kafka's retention has passed.
    archive: bool = False
    # Set when the job writes a serving version (streaming.versions): it reads references from
    # the serving namespace, re-makes the serving views when its table gains columns, and stops once
    # a cut-over made its version a previous one. None: the namespace is all there is.
    serving: ServingVersion | None = None
    # /metrics, /healthz and /readyz of the job's process (kappa run); 0: a free port the system picks,
    # logged and announced to the local Prometheus (monitoring.targets).
    metrics_port: int = 0
    # Testing aid: "<stage>:<batch>[:<partition>]" SIGKILLs the job right after that stage (a sink,
    # "staged" for the lake's staging, "dlq", "extra", or "partition" for all of a partition's writes)
    # wrote that batch; "served:<batch>" once every partition of that batch wrote, before Spark commits
    # it; "lake:<batch>" right after the Delta commit that took that batch, before its staging is deleted.
    crash_after: str | None = None

    @property
    def checkpoint(self) -> str:
        base = self.checkpoint_dir
        if not base.startswith(("s3a://", "file:/")):
            base = str(Path(base).resolve())
        return f"{base.rstrip('/')}/{self.name}"

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.sink_retry_attempts, self.sink_retry_backoff_s, self.sink_retry_max_backoff_s)


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
    table: str                                 # the serving table's name in every store
    key: tuple[str, ...]                       # its key: columns of the transformed rows
    # decoded rows (the reader schema's fields at top level, plus Kafka's columns) -> the same rows
    # with the table's columns + _version + _deleted, and _error (null if valid; validate.check).
    # One row out per row in, undecodable rows (every field null) included, and no aggregation:
    # it runs on the stream.
    transform: Callable[[DataFrame, BatchContext], DataFrame]
    # optional extra writes per partition, on the executor, from the partition's accepted changes
    # (e.g. features); it must be a module-level function (it is pickled to the executors)
    extra: Callable[[pa.Table, PartitionContext], None] | None = None
    # reference data, cached on start and re-cached every reference_refresh_s: name -> loader
    reference: dict[str, Callable[[BatchContext], DataFrame]] = field(default_factory=dict)
    # references the job waits for at start until they have rows (on_missing = "hold")
    hold: tuple[str, ...] = ()
    # ordering columns that break _version ties in latest_per_key
    tie_break: tuple[str, ...] = ("event_id",)
    # the job's hand-written migrations (<store>/V<NNN>__*.sql), if any: Store.migrate
    migrations: Path | None = None


def batch_plan(job: JobDefinition, config: JobConfig, settings: Settings, table: Table,
               crash_pids: tuple[int, ...] = (), live: bool = False) -> BatchPlan:
    """What the executors need to write this job's batches, when the lake is one of its sinks: a
    replay chunk appends its changes to it; a ``live`` job's batches stage them for its LakeWriter."""
    unknown = set(config.sinks) - set(stores.names())
    if unknown:
        raise ValueError(f"job {config.name}: unknown sinks {sorted(unknown)} (config 'sinks'); known: "
                         f"{list(stores.names())}")
    return BatchPlan(settings=settings, query=config.name, topic=config.topic, namespace=config.namespace,
                     spec=table, stores=tuple(stores.get(s) for s in stores.serving() if s in config.sinks),
                     lake="lake" in config.sinks and not live, staged="lake" in config.sinks and live,
                     tie_break=job.tie_break,
                     retry=config.retry, extra=job.extra, crash_after=config.crash_after, crash_pids=crash_pids)


def prepare(decoded: DataFrame, job: JobDefinition, ctx: BatchContext) -> tuple[Table, DataFrame]:
    """Decoded Kafka rows (:meth:`Decoder.decode`) -> the serving table they make, and what the
    :class:`BatchWriter` takes: the table's columns and ``_error`` (undecodable, or the rule the row
    broke); a rejected row also keeps its original record for the DLQ. Pure, and the same for a
    stream and for a bounded replay."""
    records = decoded.where(F.col("value").isNotNull())  # a Kafka tombstone carries nothing to decode or reject
    rows = records.select(*RECORD_COLUMNS, "timestamp", decoding.SCHEMA_ID, decoding.DECODE_ERROR,
                          f"{decoding.DECODED}.*")
    checked = job.transform(rows, ctx)
    error = F.coalesce(F.col(decoding.DECODE_ERROR), F.col(ERROR))
    original = [F.when(error.isNotNull(), F.col(c)).alias(c) for c in [*RECORD_COLUMNS, decoding.SCHEMA_ID]]
    table = derive(ctx.config.name, job.table, job.key, checked.schema)
    return table, checked.select(*table.all_columns, *original, error.alias(ERROR))


def unique_events(decoded: DataFrame, watermark: str) -> DataFrame:
    """Decoded rows without the re-sends of an ``event_id`` (a stream: within ``watermark``; a bounded
    read, as replay's: all of them).

    Duplicates are re-sends that arrive close together, so the watermark runs on arrival time (the
    Kafka record's timestamp), not event time: events that are old by event time (backfills, late
    sources) are never dropped as late. Undecodable rows have no event_id and are never duplicates.
    """
    keyed = (decoded
             .withColumn("_dedupe_id", F.coalesce(F.col(f"{decoding.DECODED}.event_id"),
                                                  F.format_string("%s/%d/%d", "topic", "partition", "offset")))
             .withColumn("_dedupe_time", F.col("timestamp")))
    return dedupe.within_watermark(keyed, "_dedupe_id", "_dedupe_time", watermark)


def prepare_stores(job: JobDefinition, config: JobConfig, settings: Settings, table: Table,
                   ensured: dict[str, Table], migrate: bool = True) -> None:
    """The job's serving table in each of its stores, created or evolved to ``table``, and (with
    ``migrate``) its hand-written migrations, recorded under the pipeline's name. ``ensured`` (store
    -> the table last made there) spares the DDL when nothing changed."""
    serving = [stores.get(s) for s in stores.serving() if s in config.sinks]
    recorded_as = config.serving.pipeline if config.serving else config.name  # every version's job the same
    if migrate and job.migrations is not None:
        for store in serving:
            if migration_files(job.migrations, store.name):  # no bookkeeping table where nothing is applied
                store.migrate(settings, config.namespace, recorded_as, job.migrations)
    for store in serving:
        if ensured.get(store.name) != table:
            added = store.ensure_table(settings, config.namespace, table, config.name)
            if added and config.serving is not None:
                versions.refresh(settings, store.name, config.serving, config.namespace, table.name)
            ensured[store.name] = table


def serving_table(job: JobDefinition, config: JobConfig, settings: Settings, spark: SparkSession) -> Table:
    """The table a query of ``job`` would write if it started now (from the topic's newest reader
    schema in the registry), planned on no data: for tools and tests that need its shape."""
    decoder = decoding.Decoder.from_registry(SchemaRegistryClient({"url": settings.registry.url}), config.topic)
    records = spark.createDataFrame([], sources.KAFKA_SCHEMA)
    ctx = BatchContext(spark, settings, config)
    ctx.reference.update({name: load(ctx) for name, load in job.reference.items()})  # their columns, not rows
    return prepare(decoder.decode(records), job, ctx)[0]
