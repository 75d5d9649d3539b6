"""The consumer lag of a streaming job, measured from outside it.

A job that is down exports nothing, and Spark's Kafka source commits nothing to Kafka, so Burrow
or kafka_exporter cannot see it. This reads the job's position where the job itself resumes from,
its checkpoint (:mod:`streaming.checkpoints`), and compares it with the topic's end offsets:

- offsets behind: end offset - position, per partition;
- time behind: the age of the oldest record not processed yet (now - its Kafka timestamp), 0
  when none is waiting. A stopped or stuck job shows both growing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from kappa.settings import Settings
from streaming import checkpoints


@dataclass(frozen=True)
class PartitionLag:
    job: str
    topic: str
    partition: int
    position: int      # the next offset the job will read
    end: int           # the topic-partition's end offset (high watermark)
    seconds: float     # the age of the record at ``position``; 0 when the job is at the end

    @property
    def offsets(self) -> int:
        return max(0, self.end - self.position)


class LagProbe:
    """Measures jobs' lag with one Kafka consumer that reads single records (never commits)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = Consumer(settings.kafka.client(**{
            "group.id": "kappa-lag-probe", "enable.auto.commit": False, "enable.partition.eof": False}))
        self._timestamps: dict[tuple[str, int, int], int] = {}

    def measure(self, job: str, topic: str, checkpoint: str) -> list[PartitionLag]:
        """Per partition of ``topic``: where the job with ``checkpoint`` is, and how far behind."""
        position = checkpoints.committed(self.settings, checkpoint).get(topic, {})
        meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise LookupError(f"topic {topic} of job {job} does not exist in Kafka")
        now = time.time()
        lags = []
        for partition in sorted(meta.partitions):
            low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            at = max(low, position.get(partition, low))  # never ran, or retention passed it: the oldest kept
            seconds = 0.0
            if at < high:
                stamp = self._timestamp(topic, partition, at)
                seconds = max(0.0, now - stamp / 1000) if stamp is not None else 0.0
            lags.append(PartitionLag(job, topic, partition, at, high, seconds))
        return lags

    def _timestamp(self, topic: str, partition: int, offset: int) -> int | None:
        """The Kafka timestamp (ms) of the first record at or after ``offset`` (cached: records do not change)."""
        key = (topic, partition, offset)
        if key not in self._timestamps:
            self.consumer.assign([TopicPartition(topic, partition, offset)])
            try:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    message = self.consumer.poll(0.5)
                    if message is not None and message.error() is None:
                        self._timestamps[key] = message.timestamp()[1]
                        break
            finally:
                self.consumer.unassign()
            if len(self._timestamps) > 10_000:
                self._timestamps.clear()
        return self._timestamps.get(key)

    def close(self) -> None:
        self.consumer.close()
