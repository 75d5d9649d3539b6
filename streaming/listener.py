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

from confluent_kafka import TopicPartition
from pyspark.sql.streaming import StreamingQueryListener

from kappa.settings import KafkaSettings
from streaming import metrics

log = logging.getLogger(__name__)


def _offsets(value: str | dict | None) -> dict:
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else value


def offsets_behind(end_offset: str | dict | None, latest_offset: str | dict | None) -> dict[tuple[str, str], int]:
    """{(topic, partition): latest - end} from a Kafka source's progress offsets (JSON)."""
    end, latest = _offsets(end_offset), _offsets(latest_offset)
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
        metrics.BATCH_SECONDS.labels(name).observe(progress.get("batchDuration", 0) / 1000.0)
        metrics.INPUT_RATE.labels(name).set(progress.get("inputRowsPerSecond", 0.0))  # absent when undefined
        metrics.PROCESSED_RATE.labels(name).set(progress.get("processedRowsPerSecond", 0.0))
        metrics.BATCHES.labels(name).inc()
        for source in progress.get("sources", []):
            behind = offsets_behind(source.get("endOffset"), source.get("latestOffset"))
            for (topic, partition), offsets in behind.items():
                metrics.BEHIND.labels(name, topic, partition).set(offsets)
            topics = {topic for topic, _ in behind} | set(_offsets(source.get("endOffset")))
            if len(topics) == 1:
                metrics.INPUT_ROWS.labels(name, topics.pop()).inc(source.get("numInputRows", 0))
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
            metrics.ERRORS.labels(group, "group_commit").inc()
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

    return Consumer(kafka.client(**{"group.id": group, "enable.auto.commit": False}))


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
