"""Rejected source records to ``<topic>.dlq``, unchanged, with the reason and position as headers.

Produced from the executor that holds the partition, like every other sink. A batch rerun after a
crash sends its rejected records again: the dead-letter topic is at least once (its records keep
their original topic, partition and offset in ``source.position`` to tell re-sends apart).
"""
from __future__ import annotations

import pyarrow as pa
from confluent_kafka import KafkaException, Producer

from kappa.settings import Settings
from streaming.stores.base import Sink, WriteToken
from streaming.tables import Table
from streaming.transforms.validate import ERROR
from kappa.errors import Unavailable

# The Kafka record a rejected row goes to the DLQ as, with its position.
RECORD_COLUMNS = ["key", "value", "topic", "partition", "offset"]


class NotAcknowledged(Unavailable, ConnectionError):
    """Kafka did not acknowledge every dead letter in time."""


class DeadLetterSink(Sink):
    name = "dlq"
    transient = (NotAcknowledged, KafkaException, BufferError)

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(namespace=topic)
        self.settings = settings
        self.topic = f"{topic}.dlq"
        self._producer = None

    @property
    def address(self) -> str:
        return self.settings.kafka.bootstrap_servers

    def write(self, rows: pa.Table, spec: Table | None, token: WriteToken) -> None:
        """``rows``: the rejected records (:data:`RECORD_COLUMNS` and the error); ``spec`` is unused."""
        if rows.num_rows == 0:
            return
        if self._producer is None:
            self._producer = Producer(self.settings.kafka.client(**{
                "enable.idempotence": True, "acks": "all", "message.timeout.ms": 20_000}))
        failures: list = []
        for row in rows.select([*RECORD_COLUMNS, ERROR]).to_pylist():
            self._producer.produce(self.topic, key=row["key"], value=row["value"], headers=[
                ("error", row[ERROR].encode()),
                ("source.position", f"{row['topic']}[{row['partition']}]@{row['offset']}".encode()),
                ("original.topic", row["topic"].encode()),
            ], on_delivery=lambda err, _msg: err and failures.append(err))
            self._producer.poll(0)
        if self._producer.flush(30) or failures:
            raise NotAcknowledged(f"{self.topic}: {failures[:1] or 'not acknowledged within 30 s'}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
