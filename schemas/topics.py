"""Creating the Kafka topics the platform owns (event topics and their DLQs, the registry's and the
connectors' compacted state topics) with chosen partitions and configs rather than the broker's
defaults.

Several processes may create the same topic at once (two connectors, a connector and the
registry); the one that loses sees Kafka's ``TOPIC_ALREADY_EXISTS`` error code, which is success.
"""
from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def ensure_topics(kafka: dict[str, str], topics: Sequence[NewTopic], timeout: float = 30) -> None:
    """Create those of ``topics`` that do not exist yet. ``kafka``: the client config
    (``bootstrap.servers`` and any security settings)."""
    admin = AdminClient(kafka)
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [topic for topic in topics if topic.topic not in existing]
    if not new:
        return
    for future in admin.create_topics(new, request_timeout=timeout).values():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if not already_exists(exc):
                raise


def already_exists(exc: KafkaException) -> bool:
    """Whether a topic creation failed only because the topic exists (by Kafka's error code)."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
