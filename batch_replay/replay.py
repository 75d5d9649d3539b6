"""A bounded replay of a pipeline: the live job's decode, dedupe, transforms and sink path over a range.

Nothing here re-implements the pipeline. Each chunk of the range (:mod:`batch_replay.ranges`) is a
bounded Kafka read handed to the same functions a micro-batch goes through: the decoder
(:class:`streaming.decode.Decoder`), :func:`streaming.plan.unique_events`,
:func:`streaming.plan.prepare` with the pipeline's own transform and references, the same
table derivation and DDL (:func:`streaming.plan.prepare_stores`), and
:class:`streaming.stores.writer.BatchWriter`, so every sink is written from the executors,
idempotently per (replay, chunk, partition).

``live`` mode upserts into the serving tables the live job writes: Cassandra and PostgreSQL keep
a row only if its version (the source position) is newer, ClickHouse replaces by version on merge
(and drops a chunk it already took by its token), so a replay may run beside the live job and be
rerun at will. The lake's change history is the live job's: a live replay leaves it out unless
asked (``sinks``), and then appends each chunk once (Delta ``txnAppId`` = the replay's id). The
pipeline's per-partition ``extra`` writes (e.g. the orders pipeline's hourly sums) are increments,
not upserts: adding a replayed range's increments to the live job's would count it twice, so a
live replay does not run them; a shadow rebuild recomputes them.

``shadow`` mode writes a new serving version (:mod:`streaming.versions`): every store's
tables of the pipeline in the version's own namespace, the lake's change history and the
``extra`` tables included, all from the replayed range and nothing else; readers see none of it
until the cut-over. A rerun of the same range writes the same unfinished version, chunk by chunk
with the same tokens and version guards, so it changes nothing.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka.schema_registry import SchemaRegistryClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from batch_replay import metrics
from batch_replay.ranges import PartitionRange, ReplayRange, offsets_json
from kappa.settings import Settings
from streaming import decode as decoding
from streaming import sources
from streaming.jobs.pipeline import Pipeline
from streaming.plan import BatchContext, batch_plan, prepare, prepare_stores, unique_events
from streaming import stores
from streaming.stores import archive
from streaming.stores.writer import BatchResult, BatchWriter
from streaming.tables import Table
from streaming.versions import ServingVersion, Version

log = logging.getLogger(__name__)
def live_sinks() -> tuple[str, ...]:
    """A live replay's default stores: the serving stores, not the lake's change history."""
    return stores.serving()


@dataclass
class Summary:
    """What a replay did: its id, the events read, the changes each sink took, the DLQ count, the time."""

    replay_id: str
    chunks: int = 0
    events: int = 0      # accepted changes + rejected records (duplicates of an event_id dropped)
    rows: int = 0        # rows upserted into each serving store: the newest change per key and chunk
    changes: int = 0     # accepted changes: what the lake appends
    rejected: int = 0
    seconds: float = 0.0
    sinks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """A replay before it runs: what ``--dry-run`` prints."""

    pipeline: Pipeline
    range: ReplayRange
    chunk_events: int
    sink_partitions: int | None   # None in a dry run without Spark: its default parallelism
    sinks: tuple[str, ...]
    source: str = "kafka"         # or "lake": the raw archive (streaming.stores.archive) at archive_location
    archive_location: str | None = None
    mode: str = "live"            # or "shadow": into ``version`` (streaming.versions)
    version: Version | None = None
    serving: ServingVersion | None = None  # readers' namespace and the pipeline's record name

    @property
    def namespace(self) -> str:
        """Where the replay writes: the serving namespace's active version, or the shadow version's own."""
        return self.version.home if self.version is not None else self.pipeline.namespace

    @property
    def replay_id(self) -> str:
        """The query name of this replay's writes (its tokens and Delta app id)."""
        return f"{self.pipeline.name}.replay.{self.range.identity(self.chunk_events, self.sink_partitions)}"

    @property
    def chunks(self) -> list[tuple[PartitionRange, ...]]:
        return self.range.chunks(self.chunk_events)

    def describe(self, table: str) -> list[str]:
        name = self.replay_id if self.sink_partitions else f"{self.pipeline.name}.replay"
        partitions = f"{self.sink_partitions} sink partitions" if self.sink_partitions else \
            "as many sink partitions as Spark's default parallelism"
        lines = [f"replay {name}: pipeline {self.pipeline.name}, mode {self.mode}, source {self.source}",
                 f"topic {self.range.topic}: {self.range.events} records in {len(self.chunks)} chunks of at most "
                 f"{self.chunk_events}, {partitions}"]
        lines += [f"  partition {p.partition}: offsets [{p.start}, {p.end}) = {p.count} records"
                  for p in self.range.partitions]
        lines.append(f"writes {self.namespace}.{table} in " + ", ".join(self.sinks))
        if self.version is not None:
            lines.append(f"version {self.version.number} of the serving tables of {self.pipeline.namespace}: readers "
                         f"see it after the cut-over")
        return lines


def replay(plan: Plan, settings: Settings, spark: SparkSession,
           progress: Callable[[int, BatchResult], None] = lambda done, result: None) -> Summary:
    """Run ``plan`` chunk by chunk; ``progress(records done, chunk result)`` after each chunk."""
    started = time.perf_counter()
    pipeline = plan.pipeline
    job = pipeline.definition(settings)
    if plan.mode == "live":
        job = dataclasses.replace(job, extra=None)  # no increments (above)
    # Where the stores are made and the migrations recorded: the pipeline's, in the namespace written.
    written = pipeline.model_copy(update={"namespace": plan.namespace, "serving": plan.serving or pipeline.serving})
    # The replay's writes carry its own name (tokens, Delta app id).
    config = written.model_copy(update={"name": plan.replay_id, "sinks": list(plan.sinks)})
    ctx = BatchContext(spark, settings, config)
    ctx.reference.update({name: load(ctx).cache() for name, load in job.reference.items()})
    registry = SchemaRegistryClient({"url": settings.registry.url})
    extra_ids: list[int] = []
    decoder = decoding.Decoder.from_registry(registry, pipeline.topic)
    summary = Summary(plan.replay_id)
    writer: BatchWriter | None = None
    table: Table | None = None
    ensured: dict[str, Table] = {}
    done = 0
    metrics.planned(pipeline.name, plan.mode, pipeline.topic, plan.sinks, plan.range.events, len(plan.chunks))
    for index, chunk in enumerate(plan.chunks):
        while True:
            raw = _records(plan, settings, spark, chunk)
            chunk_table, prepared = prepare(unique_events(decoder.decode(raw), pipeline.watermark), job, ctx)
            if chunk_table != table:  # the first chunk, or one written with a newer schema
                table = chunk_table
                prepare_stores(job, written, settings, table, ensured, migrate=not ensured)
                writer = BatchWriter(spark, batch_plan(job, config, settings, table), plan.sink_partitions)
            try:
                result = writer.write(prepared, index)
                break
            except Exception as exc:
                ids = decoding.unknown_ids(exc)
                if not ids:
                    raise
                log.info("chunk %d: new writer schema ids %s: refreshing from the registry", index, ids)
                extra_ids = sorted(set(extra_ids) | set(ids))
                decoder = decoding.Decoder.from_registry(registry, pipeline.topic, extra_ids)
        done += sum(p.count for p in chunk)
        metrics.chunk_done(pipeline.name, plan.mode, pipeline.topic, plan.sinks, sum(p.count for p in chunk), result)
        summary.chunks += 1
        summary.events += result.changes + result.rejected
        summary.rows += result.rows
        summary.changes += result.changes
        summary.rejected += result.rejected
        progress(done, result)
    for frame in ctx.reference.values():
        frame.unpersist()
    summary.sinks = {sink: summary.changes if sink == "lake" else summary.rows for sink in plan.sinks}
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary


def _records(plan: Plan, settings: Settings, spark: SparkSession, chunk: tuple[PartitionRange, ...]) -> DataFrame:
    """A chunk's records as the Kafka source gives them: from Kafka, or from the lake's raw archive."""
    topic = plan.pipeline.topic
    if plan.source == "kafka":
        return sources.read_batch(spark, settings, topics=[topic], starting_offsets=offsets_json(topic, chunk, end=False),
                                  ending_offsets=offsets_json(topic, chunk, end=True))
    selected = None
    for p in chunk:
        if p.count:
            one = (F.col("partition") == p.partition) & (F.col("offset") >= p.start) & (F.col("offset") < p.end)
            selected = one if selected is None else selected | one
    return archive.read(spark, plan.archive_location).where((F.col("topic") == topic) & selected)
