"""The platform's topic creation (schemas/topics.py) on the real Kafka: idempotent, and a lost race
told apart from a real refusal by Kafka's error code, not by the words of its message."""
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import already_exists, ensure_topics


def test_a_topic_created_twice_is_told_apart_by_kafkas_error_code(kafka_bootstrap, unique):
    topic = f"it.kafka.twice-{unique}"
    kafka = {"bootstrap.servers": kafka_bootstrap}
    ensure_topics(kafka, [NewTopic(topic, num_partitions=2, replication_factor=1)])
    ensure_topics(kafka, [NewTopic(topic, num_partitions=2, replication_factor=1)])  # exists: nothing to do
    admin = AdminClient(kafka)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 2
    # What a process that lost the race to create it sees: success, by the error's code.
    with pytest.raises(KafkaException) as lost:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    assert already_exists(lost.value)
    with pytest.raises(KafkaException) as invalid:
        admin.create_topics([NewTopic(f"{topic}-x", num_partitions=0, replication_factor=1)])[f"{topic}-x"].result(30)
    assert not already_exists(invalid.value)
