"""What a replay reads: a topic's offset range per partition, from times or offsets, cut into chunks.

A bound is a time (ISO 8601, UTC unless it says otherwise), ``earliest``/``latest``, or offsets per
partition (``0:120,1:98``). Times become offsets with Kafka's own index (``offsets_for_times``:
the first record at or after the time), so FROM is inclusive and TO exclusive, like Airflow's data
intervals. A range Kafka no longer holds in full is refused, naming the earliest retained time. From the
lake's raw archive (:mod:`streaming.stores.archive`) the same bounds select the archived records
by their Kafka timestamp and offset, so a range replays the same from either source.

Chunks are bounded slices of the range, in offset order per partition. A chunk's identity is the
range's id (topic, offsets, chunk size, sink partitions) and its index, so a rerun of the same
range cuts the same chunks and every sink recognises what it already wrote.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from confluent_kafka import Consumer, TopicPartition

from kappa.settings import Settings
from kappa.errors import Refused

Bound = datetime | str | dict[int, int]  # a time, "earliest"/"latest", or partition -> offset


class ReplayRefused(Refused, ValueError):
    """A replay that must not start; the message says what to do instead."""


def parse_bound(text: str) -> Bound:
    """``2026-12-01``, ``2026-12-01T10:00:00+01:00``, ``earliest``, ``latest`` or ``0:120,1:98``."""
    text = text.strip()
    if text in ("earliest", "latest"):
        return text
    if re.fullmatch(r"\d+:\d+(,\d+:\d+)*", text):
        return {int(p): int(o) for p, o in (item.split(":") for item in text.split(","))}
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayRefused(f"{text!r} is not a time (ISO 8601, e.g. 2026-12-01 or 2026-12-01T10:00:00Z), "
                            "'earliest', 'latest' or offsets per partition (0:120,1:98)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int   # first offset
    end: int     # first offset after the range

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class ReplayRange:
    topic: str
    partitions: tuple[PartitionRange, ...]

    @property
    def events(self) -> int:
        """Records in the range (an upper bound of the events: transaction markers take offsets too)."""
        return sum(p.count for p in self.partitions)

    def chunks(self, max_events: int) -> list[tuple[PartitionRange, ...]]:
        """Slices of at most ``max_events`` records, each partition advancing in offset order.

        Every slice names every partition (Spark's Kafka source wants offsets for all of them); a
        partition with nothing left in a slice has an empty range there.
        """
        busy = [p for p in self.partitions if p.count]
        if not busy:
            return []
        step = max(1, max_events // len(busy))
        return [tuple(PartitionRange(p.partition, min(p.end, p.start + index * step),
                                     min(p.end, p.start + (index + 1) * step)) for p in self.partitions)
                for index in range(math.ceil(max(p.count for p in busy) / step))]

    def identity(self, max_events: int, sink_partitions: int) -> str:
        """The range's id: the same range, chunking and partitioning give the same id (and tokens)."""
        text = json.dumps([self.topic, [(p.partition, p.start, p.end) for p in self.partitions], max_events,
                           sink_partitions])
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def offsets_json(topic: str, ranges: tuple[PartitionRange, ...], end: bool) -> str:
    """Spark's ``startingOffsets``/``endingOffsets`` for ``ranges``."""
    return json.dumps({topic: {str(r.partition): r.end if end else r.start for r in ranges}})


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


class _Kafka:
    """The few questions a replay plan asks Kafka, with one consumer."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(settings.kafka.client(**{
            "group.id": "kappa-replay-plan", "enable.auto.commit": False, "isolation.level": "read_committed"}))

    def partitions(self, topic: str) -> list[int]:
        meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise ReplayRefused(f"topic {topic} does not exist in Kafka: check the pipeline file's 'topic'")
        return sorted(meta.partitions)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)

    def offset_at(self, topic: str, partition: int, moment: datetime) -> int | None:
        """The first offset at or after ``moment`` (None: no record that late)."""
        found = self.consumer.offsets_for_times([TopicPartition(topic, partition, int(moment.timestamp() * 1000))],
                                                timeout=10)[0]
        return None if found.offset < 0 else found.offset

    def timestamp_at(self, topic: str, partition: int, offset: int) -> int | None:
        """The timestamp (ms) of the first record at or after ``offset``."""
        self.consumer.assign([TopicPartition(topic, partition, offset)])
        try:
            for _ in range(20):
                message = self.consumer.poll(0.5)
                if message is not None and message.error() is None:
                    return message.timestamp()[1]
            return None
        finally:
            self.consumer.unassign()

    def close(self) -> None:
        self.consumer.close()


def _check_order(start: Bound, end: Bound) -> None:
    if isinstance(start, datetime) and isinstance(end, datetime) and start >= end:
        raise ReplayRefused(f"FROM {start.isoformat()} is not before TO {end.isoformat()}: the range [FROM, TO) "
                            "is empty; swap them")


def resolve(settings: Settings, topic: str, start: Bound, end: Bound) -> ReplayRange:
    """The offsets of [start, end) in every partition of ``topic``; refuses a range Kafka no longer holds."""
    _check_order(start, end)
    kafka = _Kafka(settings)
    try:
        ranges = []
        for partition in kafka.partitions(topic):
            low, high = kafka.watermarks(topic, partition)
            first = _offset(kafka, topic, partition, start, low, high)
            last = _offset(kafka, topic, partition, end, low, high)
            if last < first:
                raise ReplayRefused(f"FROM is after TO in partition {partition} of {topic} (offsets {first} > {last}):"
                                    " swap them")
            if _starts_before_retention(kafka, topic, partition, start, first, low):
                retained = kafka.timestamp_at(topic, partition, low)
                since = f"{_when(retained)} (offset {low})" if retained is not None else \
                    f"offset {low}, and holds no record now"
                raise ReplayRefused(
                    f"partition {partition} of {topic} no longer holds the start of the range: Kafka retains it "
                    f"from {since}. Replay that part from the lake's archive (SOURCE=lake), or start at or after "
                    "that time")
            ranges.append(PartitionRange(partition, first, last))
        return ReplayRange(topic, tuple(ranges))
    finally:
        kafka.close()


def _offset(kafka: _Kafka, topic: str, partition: int, bound: Bound, low: int, high: int) -> int:
    if bound == "earliest":
        return low
    if bound == "latest":
        return high
    if isinstance(bound, dict):
        if partition not in bound:
            raise ReplayRefused(f"offsets {bound} name no offset for partition {partition} of {topic}: give one per "
                                "partition")
        return min(max(bound[partition], 0), high)
    found = kafka.offset_at(topic, partition, bound)
    return high if found is None else found


def _starts_before_retention(kafka: _Kafka, topic: str, partition: int, start: Bound, first: int, low: int) -> bool:
    """Whether records of the range were deleted (retention, or deleted records) before the replay."""
    if start == "earliest" or low == 0:
        return False
    if isinstance(start, dict):
        return start.get(partition, 0) < low
    if first > low:
        return False
    retained = kafka.timestamp_at(topic, partition, low)  # the range starts at the log start: did it begin earlier?
    # Nothing retained at all (every record deleted): their times are unknown, so the range may need them.
    return retained is None or retained > int(start.timestamp() * 1000)


def resolve_archive(spark, location: str, topic: str, start: Bound, end: Bound) -> ReplayRange:
    """The offsets of [start, end) in the raw archive at ``location`` (a Delta table), per partition."""
    from pyspark.sql import functions as F

    from streaming.stores import archive

    _check_order(start, end)
    if not archive.exists(spark, location):
        raise ReplayRefused(f"the lake has no raw archive of {topic} at {location}: the pipeline keeps one with "
                            "archive = true (from then on); replay older data from Kafka (SOURCE=kafka)")
    rows = archive.read(spark, location).where(F.col("topic") == topic)
    if isinstance(start, datetime):
        rows = rows.where(F.col("timestamp") >= F.lit(start))
    if isinstance(end, datetime):
        rows = rows.where(F.col("timestamp") < F.lit(end))
    bounds = rows.groupBy("partition").agg(F.min("offset").alias("first"), F.max("offset").alias("last"))
    # Planning, on the driver: the executors aggregate, and what comes back is one row per Kafka
    # partition (its first and last archived offset), never records: bounded by the partition count.
    found = {r["partition"]: (r["first"], r["last"] + 1) for r in bounds.collect()}
    if not found:
        raise ReplayRefused(f"the raw archive at {location} holds no record of {topic} in the range")
    ranges = []
    for partition, (first, after) in sorted(found.items()):
        if isinstance(start, dict):
            first = max(first, start.get(partition, first))
        if isinstance(end, dict):
            after = min(after, end.get(partition, after))
        ranges.append(PartitionRange(partition, first, max(first, after)))
    return ReplayRange(topic, tuple(ranges))
