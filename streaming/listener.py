"""StreamingQueryListener -> Prometheus: batch duration, rows per second, offsets behind latest;
and each completed batch's end offsets -> a Kafka consumer group named after the query.

The lag is per topic-partition: the Kafka source reports, in each progress event, the offsets a
batch ended at and the latest offsets it saw; their difference is how far the job is behind.

Spark's Kafka source commits nothing to Kafka (it resumes from its checkpoint), so Kafka's own
tools (``kafka-consumer-groups --describe``, Burrow, kafka_exporter) would not see the jobs. The
listener commits each batch's end offsets to the group ``<query name>``, for monitoring only: the
job never reads them back, so a lost or late commit changes nothing but what those tools show.
"""
from __future__ import annotations

import json
import logging

from prometheus_client import Counter, Gauge
from confluent_kafka import TopicPartition
from pyspark.sql.streaming import StreamingQueryListener

from settings import KafkaSettings

BATCH_SECONDS = Gauge("streaming_batch_duration_seconds", "Duration of the last micro-batch", ["query"])
INPUT_RATE = Gauge("streaming_input_rows_per_second", "Input rate of the last micro-batch", ["query"])
PROCESSED_RATE = Gauge("streaming_processed_rows_per_second", "Processing rate of the last micro-batch", ["query"])
BATCHES = Counter("streaming_batches_total", "Micro-batches completed", ["query"])
ROWS = Counter("streaming_input_rows_total", "Rows read from Kafka", ["query"])
LAG = Gauge("streaming_kafka_offsets_behind_latest", "Offsets between the last batch's end and the latest offset",
            ["query", "topic", "partition"])
GROUP_COMMIT_ERRORS = Counter("streaming_group_commit_errors_total",
                              "Batch end offsets not committed to the query's consumer group (monitoring only)",
                              ["query"])
log = logging.getLogger(__name__)


def offsets_behind(end_offset: str | dict | None, latest_offset: str | dict | None) -> dict[tuple[str, str], int]:
    """{(topic, partition): latest - end} from a Kafka source's progress offsets (JSON)."""
    def load(value):
        if value is None:
            return {}
        return json.loads(value) if isinstance(value, str) else value

    end, latest = load(end_offset), load(latest_offset)
    behind = {}
    for topic, partitions in latest.items():
        for partition, offset in partitions.items():
            done = end.get(topic, {}).get(partition, 0)
            behind[(topic, partition)] = max(0, int(offset) - int(done))
    return behind


class MetricsListener(StreamingQueryListener):
    """Each query's progress into the Prometheus metrics above.

    PySpark turns a progress event into Python objects with one Py4J call per field, which cost a
    quarter of a second per micro-batch on two cores, in competition with the job's own driver.
    This listener's Java side hands the progress over as one JSON document instead (``_jlistener``).
    ``kafka`` None leaves Kafka alone (a test without a broker).
    """

    def __init__(self, kafka: KafkaSettings | None = None) -> None:
        self.kafka = kafka
        self._consumers: dict = {}  # query name -> the consumer that commits its group's offsets

    def onQueryStarted(self, event) -> None:  # noqa: N802 (Spark's names)
        pass

    def onQueryProgress(self, event) -> None:  # noqa: N802
        self.record(json.loads(event.progress.json))

    def onQueryIdle(self, event) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        pass

    def record(self, progress: dict) -> None:
        """One progress event, as Spark's ``StreamingQueryProgress.json``."""
        name = progress.get("name") or progress["id"]
        BATCH_SECONDS.labels(name).set(progress.get("batchDuration", 0) / 1000.0)
        INPUT_RATE.labels(name).set(progress.get("inputRowsPerSecond", 0.0))  # absent when undefined
        PROCESSED_RATE.labels(name).set(progress.get("processedRowsPerSecond", 0.0))
        BATCHES.labels(name).inc()
        ROWS.labels(name).inc(progress.get("numInputRows", 0))
        for source in progress.get("sources", []):
            for (topic, partition), behind in offsets_behind(source.get("endOffset"), source.get("latestOffset")).items():
                LAG.labels(name, topic, partition).set(behind)
            if self.kafka is not None and progress.get("numInputRows"):  # a batch ran: its end is the group's position
                self.commit(name, source.get("endOffset"))

    def commit(self, group: str, end_offset: str | dict | None) -> None:
        """The batch's end offsets as the committed offsets of consumer group ``group``."""
        ends = json.loads(end_offset) if isinstance(end_offset, str) else end_offset
        if not ends or not isinstance(ends, dict):
            return
        try:
            consumer = self._consumers.get(group)
            if consumer is None:
                consumer = self._consumers[group] = _group_consumer(self.kafka, group)
            consumer.commit(offsets=[TopicPartition(topic, int(p), int(o)) for topic, parts in ends.items()
                                     for p, o in parts.items()], asynchronous=False)
        except Exception as exc:  # monitoring only: the job goes on
            GROUP_COMMIT_ERRORS.labels(group).inc()
            log.warning("query %s: batch end offsets not committed to its consumer group (%s: %s); the job is not "
                        "affected, only what Kafka's tools show", group, type(exc).__name__, exc)

    @property
    def _jlistener(self):
        """What ``spark.streams.addListener`` registers (PySpark's hook): our JSON bridge."""
        if not hasattr(self, "_json_bridge"):
            from pyspark import SparkContext

            self._json_bridge = SparkContext._jvm.PythonStreamingQueryListenerWrapper(_JsonProgress(self))
        return self._json_bridge


def _group_consumer(kafka: KafkaSettings, group: str):
    """A consumer that only commits (it never subscribes): Kafka takes commits for an empty group."""
    from confluent_kafka import Consumer

    return Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group, "enable.auto.commit": False,
                     **kafka.client_config})


class _JsonProgress:
    """The Python side of Spark's ``PythonStreamingQueryListener``: progress events as JSON."""

    def __init__(self, listener: MetricsListener) -> None:
        self.listener = listener

    def onQueryStarted(self, jevent) -> None:  # noqa: N802
        pass

    def onQueryProgress(self, jevent) -> None:  # noqa: N802
        self.listener.record(json.loads(jevent.progress().json()))

    def onQueryIdle(self, jevent) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, jevent) -> None:  # noqa: N802
        pass

    class Java:
        implements = ["org.apache.spark.sql.streaming.PythonStreamingQueryListener"]
