"""The connectors' Kafka producer: idempotent, Avro in the Confluent wire format, with a dead-letter queue.

Sources are acknowledged only after :meth:`EventProducer.checkpoint` returned: it waits until Kafka
has acknowledged every event produced so far and raises if any was refused, so a position is never
committed past an event that is not in Kafka.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors import metrics
from connectors.checkpoints import CheckpointStore
from schemas.serde import AvroSerializer, subject_for
from schemas.topics import ensure_topics
from kappa.settings import Settings
from kappa.errors import Unavailable

log = logging.getLogger(__name__)


class DeliveryFailed(Unavailable, RuntimeError):
    """Kafka did not acknowledge some events; the source position must not advance."""


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class EventProducer:
    def __init__(self, settings: Settings, connector: str, extra_config: dict[str, str] | None = None,
                 transactional: bool = False, transactional_id: str | None = None) -> None:
        """``transactional``: events and source positions are committed together (see :meth:`commit`).

        The transactional id defaults to one per connector, which fences a zombie instance; paths that
        run concurrently on purpose (Lambda invocations) pass their own.
        """
        self.connector = connector
        self._settings = settings
        self.transactional = transactional
        if transactional:
            extra_config = {"transactional.id": transactional_id or f"kappa-connector-{connector}",
                            **(extra_config or {})}
        self._producer = Producer({
            **settings.kafka.client(**{
                "client.id": f"connector-{connector}",
                "enable.idempotence": True,   # no duplicates or reordering from producer retries
                "acks": "all",
                "linger.ms": 5,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
            }),
            **(extra_config or {}),
        })
        self.registry = SchemaRegistryClient({"url": settings.registry.url})
        self._serializers: dict[tuple[str, str], AvroSerializer] = {}
        self._failures: list[str] = []
        self._acked: dict[str, int] = {}
        self._known_topics: set[str] = set()
        if transactional:
            # Fences any older instance with the same id and aborts what it left open.
            self._producer.init_transactions(60)
            self._producer.begin_transaction()

    # -- serialisation --------------------------------------------------------------------------
    def serializer(self, topic: str, schema: str | dict, is_key: bool = False) -> AvroSerializer:
        """The serializer of ``topic``'s value (or key), registering ``schema`` under its subject once."""
        subject = subject_for(topic, is_key)
        text = schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True)
        if (subject, text) not in self._serializers:
            self._serializers[(subject, text)] = AvroSerializer(self.registry, subject, text)
        return self._serializers[(subject, text)]

    # -- producing ------------------------------------------------------------------------------
    def ensure_topics(self, topics: Sequence[str], partitions: int = 3) -> None:
        """Create topics that do not exist yet (with their .dlq), so partition counts are chosen, not defaulted."""
        wanted = [t for t in topics if t not in self._known_topics]
        wanted += [dlq_topic(t) for t in wanted]
        if not wanted:
            return
        ensure_topics(self._settings.kafka.client(),
                      [NewTopic(t, num_partitions=1 if t.endswith(".dlq") else partitions, replication_factor=-1)
                       for t in wanted])
        self._known_topics.update(topics)

    def send(self, topic: str, key: bytes | None, value: bytes | None,
             headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue one record; blocks only while the local queue is full."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._delivered)
                return
            except BufferError:
                self._producer.poll(0.05)

    def poll(self) -> None:
        """Serve delivery callbacks; call it regularly from the read loop."""
        self._producer.poll(0)

    def dead_letter(self, topic: str, payload: bytes | str | None, reason: str, position: str,
                    key: bytes | None = None) -> None:
        """Send an unusable source record to ``<topic>.dlq`` with why and where, instead of dropping it."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8", "replace")
        self.send(dlq_topic(topic), key, payload, headers=[
            ("error", reason.encode("utf-8", "replace")[:4000]),
            ("source.position", position.encode()),
            ("source.connector", self.connector.encode()),
            ("original.topic", topic.encode()),
            ("failed.at.ms", str(int(time.time() * 1000)).encode()),
        ])
        metrics.DEAD_LETTERS.labels(self.connector, topic, reason.split(":", 1)[0][:60]).inc()
        log.warning("dead letter", extra={"topic": topic, "position": position, "reason": reason})

    def _delivered(self, err: KafkaError | None, msg) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err}")
            metrics.DELIVERY_ERRORS.labels(self.connector).inc()
        else:
            self._acked[msg.topic()] = self._acked.get(msg.topic(), 0) + 1

    def _count_acked(self, positions_topic: str | None = None) -> None:
        """Acknowledged events into kappa_connector_events_total; the source positions written in
        the same transaction are bookkeeping, not events."""
        for topic, count in self._acked.items():
            if topic != positions_topic:
                metrics.EVENTS.labels(self.connector, topic).inc(count)
        self._acked.clear()

    def checkpoint(self, timeout: float = 60.0) -> None:
        """Wait until Kafka acknowledged everything produced so far; raise if anything failed."""
        remaining = self._producer.flush(timeout)
        self._count_acked()
        if remaining:
            raise DeliveryFailed(f"{remaining} events still unacknowledged after {timeout:.0f}s "
                                 f"(is Kafka at {self._settings.kafka.bootstrap_servers} up?)")
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryFailed(f"Kafka refused {len(failures)} events, e.g. {failures[0]}")

    def commit(self, store: "CheckpointStore", positions: dict) -> None:
        """Make everything produced so far durable together with ``positions`` of ``store``.

        Transactional: the events and the position records commit in one Kafka transaction, so a
        crash leaves either both or neither for ``read_committed`` readers: exactly once per
        position, even after SIGKILL. Otherwise: wait for every acknowledgement, then save the
        positions (at least once; a re-sent event keeps its event_id).
        """
        if not self.transactional:
            self.checkpoint()
            store.save_many(positions)
            return
        for item, value in positions.items():
            self.send(store.topic, store.key(item), store.encode(value))
        try:
            self._producer.commit_transaction(60)
        except KafkaException as exc:
            self._producer.abort_transaction(60)
            raise DeliveryFailed(f"the transaction of {self.connector} was aborted: {exc}") from exc
        self._count_acked(positions_topic=store.topic)
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryFailed(f"Kafka refused {len(failures)} events, e.g. {failures[0]}")
        store.remember(positions)
        metrics.CHECKPOINTS.labels(self.connector).inc()
        self._producer.begin_transaction()

    def close(self) -> None:
        if self.transactional:
            self._producer.abort_transaction(30)  # whatever was not committed is not published
        else:
            self._producer.flush(30)
