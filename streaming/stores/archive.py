"""The raw archive: every Kafka record of a pipeline's topic, as it arrived, in a Delta table on S3.

``s3a://<bucket>/<namespace>/_raw/<topic>`` holds key, value (the Confluent-framed Avro bytes),
headers, topic, partition, offset, timestamp and timestampType, partitioned by the record's
arrival date. It is written by a second streaming query beside the pipeline's (the archiver),
with its own checkpoint (``<checkpoint>/_raw``), so Delta's streaming sink appends each record
exactly once. Batch replay reads it (``--source lake``) for ranges Kafka no longer retains and
runs the same decode and transforms over it: new transform code can reprocess data older than
Kafka's retention. (The serving tables' change history in the lake is an output, not a source.)
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from kappa.settings import Settings
from streaming import sources
from streaming.stores.lake import ensure_bucket

ARRIVAL_DATE = "arrival_date"
COLUMNS = ("key", "value", "headers", "topic", "partition", "offset", "timestamp", "timestampType")


def path(settings: Settings, namespace: str, topic: str) -> str:
    return f"s3a://{settings.s3.lake_bucket}/{namespace}/_raw/{topic}"


def start(spark: SparkSession, settings: Settings, *, name: str, topic: str, namespace: str, checkpoint: str,
          starting_offsets: str, trigger_seconds: float, available_now: bool) -> StreamingQuery:
    """The archiver query of one pipeline: its topic's records appended to the archive."""
    ensure_bucket(settings)
    raw = sources.read_stream(spark, settings, topics=[topic], starting_offsets=starting_offsets, include_headers=True)
    writer = (raw.select(*COLUMNS, F.to_date("timestamp").alias(ARRIVAL_DATE))
              .writeStream.queryName(f"{name}.archive").format("delta").partitionBy(ARRIVAL_DATE)
              .option("checkpointLocation", f"{checkpoint}/_raw"))
    writer = writer.trigger(availableNow=True) if available_now else \
        writer.trigger(processingTime=f"{trigger_seconds} seconds")
    return writer.start(path(settings, namespace, topic))


def exists(spark: SparkSession, location: str) -> bool:
    return spark.sparkContext._jvm.io.delta.tables.DeltaTable.isDeltaTable(spark._jsparkSession, location)


def read(spark: SparkSession, location: str) -> DataFrame:
    """The archive as the Kafka source's rows (the decoder's input)."""
    return spark.read.format("delta").load(location).select(*COLUMNS)
