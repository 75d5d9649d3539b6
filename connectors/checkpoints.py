"""Source positions (cursors, snapshot state, file manifests) kept in a compacted Kafka topic.

Like Kafka Connect's offsets topic: the log the events go to also holds how far each connector
got, so a connector needs no volume of its own and a restarted pod resumes where the last one
committed. Keys are ``<connector>/<item>``; values are JSON; a null value forgets an item.
Writes are synchronous: :meth:`save` returns only after Kafka acknowledged the position.
"""
from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from schemas.topics import ensure_topics
from kappa.settings import Settings
from kappa.errors import KappaError

DEFAULT_TOPIC = "_connector_positions"


class CheckpointError(KappaError, RuntimeError):
    pass


class CheckpointStore:
    def __init__(self, settings: Settings, connector: str, topic: str = DEFAULT_TOPIC) -> None:
        self.connector = connector
        self.topic = topic
        self._kafka = settings.kafka.client()
        self._producer = Producer({**self._kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
        self._positions: dict[str, Any] | None = None
        self._next_offset = 0

    def _ensure_topic(self) -> None:
        ensure_topics(self._kafka, [NewTopic(self.topic, num_partitions=1, replication_factor=-1,
                                             config={"cleanup.policy": "compact"})])

    def load(self) -> dict[str, Any]:
        """Every item this connector committed (replays the topic once; later calls are cached)."""
        if self._positions is None:
            self._ensure_topic()
            self._positions = {}
            self._next_offset = 0
            self.refresh()
        return self._positions

    def refresh(self) -> dict[str, Any]:
        """Read what other writers (another path of the same connector) committed since the last read."""
        if self._positions is None:
            return self.load()
        prefix = f"{self.connector}/"
        # read_committed: positions of an aborted transaction (a crashed connector) do not count.
        consumer = Consumer({**self._kafka, "group.id": f"checkpoints-{self.connector}",
                             "enable.auto.commit": False, "enable.partition.eof": True,
                             "isolation.level": "read_committed"})
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=30)
            if high <= self._next_offset:
                return self._positions
            consumer.assign([TopicPartition(self.topic, 0, self._next_offset)])
            while True:
                msg = consumer.poll(30)
                if msg is None:
                    raise CheckpointError(f"timed out reading {self.topic}")
                if msg.error():
                    # End of what is readable now (transaction markers hold offsets, so the last
                    # record's offset + 1 need not reach the high watermark).
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        self._next_offset = max(self._next_offset, msg.offset())
                        break
                    raise CheckpointError(f"reading {self.topic}: {msg.error()}")
                self._next_offset = msg.offset() + 1
                key = msg.key().decode()
                if key.startswith(prefix):
                    item = key[len(prefix):]
                    if msg.value() is None:
                        self._positions.pop(item, None)
                    else:
                        self._positions[item] = json.loads(msg.value())
        finally:
            consumer.close()
        return self._positions

    def get(self, item: str, default: Any = None) -> Any:
        return self.load().get(item, default)

    def save(self, item: str, value: Any) -> None:
        """Commit one position; returns after Kafka acknowledged it."""
        self.save_many({item: value})

    def key(self, item: str) -> bytes:
        return f"{self.connector}/{item}".encode()

    @staticmethod
    def encode(value: Any) -> bytes | None:
        return None if value is None else json.dumps(value, sort_keys=True).encode()

    def remember(self, items: dict[str, Any]) -> None:
        """Apply positions that were committed elsewhere (in a connector's transaction)."""
        positions = self.load()
        for item, value in items.items():
            if value is None:
                positions.pop(item, None)
            else:
                positions[item] = value

    def save_many(self, items: dict[str, Any]) -> None:
        self.load()
        errors: list = []
        for item, value in items.items():
            self._producer.produce(self.topic, key=self.key(item), value=self.encode(value),
                                   on_delivery=lambda err, _msg: errors.append(err))
        if self._producer.flush(30) or len(errors) != len(items) or any(e is not None for e in errors):
            raise CheckpointError(f"committing positions of {self.connector} to {self.topic} failed: "
                                  f"{next((e for e in errors if e), 'no acknowledgement within 30s')}")
        self.remember(items)
