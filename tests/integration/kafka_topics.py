"""Reading whole topics back in tests, decoded through the registry."""
from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas.serde import AvroDeserializer


def read_topic(bootstrap: str, registry_url: str, topic: str, decode: bool = True, timeout: float = 5.0,
               committed_only: bool = False) -> list[dict]:
    """Every record of ``topic`` now: partition, offset, key, value (decoded Avro, None for tombstones), headers."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return []
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url})) if decode else None
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-read-topic", "enable.auto.commit": False,
                         "isolation.level": "read_committed" if committed_only else "read_uncommitted",
                         "enable.partition.eof": True})
    records = []
    try:
        partitions = []
        for p in meta.partitions:
            low, high = _watermarks(consumer, TopicPartition(topic, p))
            if high > low:
                partitions.append((p, low, high))
        consumer.assign([TopicPartition(topic, p, low) for p, low, _ in partitions])
        remaining = {p: high for p, _, high in partitions}
        deadline = time.monotonic() + timeout + 0.001 * sum(h for _, _, h in partitions)
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():  # end of partition: with transactions, markers hold the last offsets
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    remaining.pop(msg.partition(), None)
                continue
            decode_ = (lambda b: deserialize(b) if b is not None else None) if decode else (lambda b: b)
            records.append({"partition": msg.partition(), "offset": msg.offset(), "key": decode_(msg.key()),
                            "value": decode_(msg.value()), "headers": dict(msg.headers() or [])})
            if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                remaining.pop(msg.partition(), None)
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r["partition"], r["offset"]))


_ELECTING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}


def _watermarks(consumer: Consumer, partition: TopicPartition, within_s: float = 15.0) -> tuple[int, int]:
    """A partition's offsets, waiting out the leader election of a topic a producer has just auto-created."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=10)
        except KafkaException as e:
            if e.args[0].code() not in _ELECTING or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """A new topic, once Kafka confirmed it (the admin client lives until then)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)
