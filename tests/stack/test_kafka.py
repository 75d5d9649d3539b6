"""Kafka through both Python clients: produce, consume in a group, commit, resume from the commit."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KPTopicPartition
from kafka.structs import OffsetAndMetadata


def _create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)


def _consume(consumer: Consumer, count: int, timeout: float = 30.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got.append(msg)
    return got


def test_confluent_kafka_group_commits_and_resumes(kafka_bootstrap, unique):
    topic, group = f"it.kafka.ck-{unique}", f"g-{unique}"
    _create_topic(kafka_bootstrap, topic)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(20):
        producer.produce(topic, key=str(i % 4), value=f"v{i}")
    assert producer.flush(30) == 0

    conf = {"bootstrap.servers": kafka_bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    first = Consumer(conf)
    first.subscribe([topic])
    batch = _consume(first, 12)
    assert len(batch) >= 12
    # Commit exactly what was read, per partition, then leave the group.
    last = {}
    for msg in batch:
        last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())
    first.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    committed = first.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
    first.close()
    assert sum(tp.offset for tp in committed if tp.offset >= 0) == len(batch)

    second = Consumer(conf)
    second.subscribe([topic])
    rest = _consume(second, 20 - len(batch))
    second.close()
    values = sorted(m.value().decode() for m in batch + rest)
    assert values == sorted(f"v{i}" for i in range(20))  # nothing lost, nothing read twice


def test_kafka_python_group_commits_and_resumes(kafka_bootstrap, unique):
    topic, group = f"it.kafka.kp-{unique}", f"g-{unique}"
    _create_topic(kafka_bootstrap, topic, partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(10):
        producer.send(topic, key=b"k", value=f"m{i}".encode())
    producer.flush(30)
    producer.close()

    def consumer():
        return KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=10000)

    first = consumer()
    read = []
    for record in first:
        read.append(record.value.decode())
        if len(read) == 6:
            break
    partition = KPTopicPartition(topic, 0)
    first.commit({partition: OffsetAndMetadata(6, "", -1)})
    assert first.committed(partition) == 6
    first.close()

    second = consumer()
    rest = [r.value.decode() for r in second]
    second.close()
    assert read + rest == [f"m{i}" for i in range(10)]
