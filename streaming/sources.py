"""Reading Kafka with Spark's native source: unbounded for the streaming jobs, bounded for replays."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from kappa.settings import Settings

# The rows Spark's Kafka source gives (headers aside), as a Spark schema, and every column's name.
KAFKA_SCHEMA = "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp, timestampType int"
KAFKA_COLUMNS = frozenset(column.split()[0] for column in KAFKA_SCHEMA.split(", ")) | {"headers"}


def _kafka_options(settings: Settings) -> dict[str, str]:
    options = {"kafka.bootstrap.servers": settings.kafka.bootstrap_servers,
               # Connectors that commit in transactions (api, files) are exactly-once only for these readers.
               "kafka.isolation.level": "read_committed",
               # Kafka's 1 MiB default fetch per partition makes Spark's reader poll-bound: bigger
               # fetches more than double its records/s (bench/streaming.py).
               "kafka.max.partition.fetch.bytes": str(8 << 20),
               "kafka.fetch.max.bytes": str(64 << 20),
               # A consumer that read to the end of a partition leaves a fetch waiting at the broker
               # for new records, up to this long; the next micro-batch's read of that partition waits
               # for it to return first. Kafka's 500 ms default put up to half a second into every
               # batch of a job that keeps up (Spark's event log: 4-record Kafka tasks of 300-550 ms).
               "kafka.fetch.max.wait.ms": "10"}
    options.update({f"kafka.{k}": v for k, v in settings.kafka.client_config.items()})
    return options


def _subscription(topics: list[str] | None, pattern: str | None) -> dict[str, str]:
    if bool(topics) == bool(pattern):
        raise ValueError("give either topics or a topic pattern")
    return {"subscribe": ",".join(topics)} if topics else {"subscribePattern": pattern}


def read_stream(spark: SparkSession, settings: Settings, *, topics: list[str] | None = None,
                pattern: str | None = None, starting_offsets: str = "earliest",
                max_offsets_per_trigger: int | None = None, include_headers: bool = False) -> DataFrame:
    reader = (spark.readStream.format("kafka").options(**_kafka_options(settings))
              .options(**_subscription(topics, pattern))
              .option("startingOffsets", starting_offsets)
              .option("failOnDataLoss", "false")
              .option("includeHeaders", str(include_headers).lower()))
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()


def read_batch(spark: SparkSession, settings: Settings, *, topics: list[str] | None = None,
               pattern: str | None = None, starting_offsets: str = "earliest",
               ending_offsets: str = "latest") -> DataFrame:
    """A bounded read (JSON offsets per partition, or earliest/latest) for batch replay."""
    return (spark.read.format("kafka").options(**_kafka_options(settings))
            .options(**_subscription(topics, pattern))
            .option("startingOffsets", starting_offsets).option("endingOffsets", ending_offsets).load())
