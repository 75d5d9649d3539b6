"""A CDC topic of a table ``items``, in Debezium's envelope made by the connector's own schema code,
and what readers of a namespace see of it in every store (through the serving versions' views and
pointers)."""
from __future__ import annotations

import json

import clickhouse_connect
import psycopg2
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.cdc import envelope
from connectors.cdc.pgoutput import Column, Relation
from schemas.serde import AvroSerializer
from streaming.stores import lake
from tests.integration import sink_contents

INT8, INT4, TEXT = 20, 23, 25
T0 = 1_796_500_000_000


class Items:
    """A CDC topic of a table ``items (id bigint key, name text, qty int, [note text])``."""

    def __init__(self, registry_url: str, kafka_bootstrap: str, topic: str) -> None:
        self.topic, self.lsn = topic, 1000
        self.registry = SchemaRegistryClient({"url": registry_url})
        self.producer = Producer({"bootstrap.servers": kafka_bootstrap})
        self.columns = [Column("id", INT8, -1, True), Column("name", TEXT, -1, False), Column("qty", INT4, -1, False)]
        self._serializer()

    def _serializer(self) -> None:
        relation = Relation(1, "public", "items", "d", tuple(self.columns))
        self.value = AvroSerializer(self.registry, f"{self.topic}-value",
                                    envelope.value_schema("it.items", relation, {}, set()))

    def add_note_column(self) -> None:
        """ALTER TABLE items ADD COLUMN note text: the next events carry a second schema version."""
        self.columns.append(Column("note", TEXT, -1, False))
        self._serializer()

    def change(self, op: str, row: dict) -> None:
        self.lsn += 10
        names = [c.name for c in self.columns]
        image = {n: row.get(n) for n in names}
        at = T0 + self.lsn
        value = {"before": {n: (image[n] if n == "id" else None) for n in names} if op == "d" else None,
                 "after": None if op == "d" else image, "op": op,
                 "source": {"connector": "it", "db": "kappa", "schema": "public", "table": "items", "lsn": self.lsn,
                            "txId": self.lsn, "ts_ms": at, "snapshot": "false"},
                 "ts_ms": at, "event_id": f"{self.topic}:{self.lsn}", "event_time": at}
        key = str(row["id"]).encode()
        self.producer.produce(self.topic, key=key, value=self.value(value))
        if op == "d":
            self.producer.produce(self.topic, key=key, value=None)  # the tombstone after a delete

    def garbage(self) -> None:
        self.producer.produce(self.topic, key=b"x", value=b"not avro at all")

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def clickhouse(settings):
    ch = settings.clickhouse
    return clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password)


def clickhouse_rows(settings, namespace: str) -> int:
    return clickhouse(settings).query(f"SELECT count() FROM `{namespace}`.items").result_rows[0][0]  # no FINAL


def served(settings, namespace: str, table) -> dict[str, dict]:
    """What readers of ``namespace`` see: PostgreSQL and ClickHouse by the serving names, Cassandra and
    the lake through their pointers."""
    conn = psycopg2.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = 'items'", (namespace,))
        assert cur.fetchone()[0] == "v"  # a view over the active version
    conn.close()
    from streaming.stores.cassandra import connect

    cluster, session = connect(settings)
    keyspace = session.execute(f'SELECT keyspace_name FROM "{namespace}".serving_versions WHERE table_name = %s',
                               ("items",)).one().keyspace_name
    cluster.shutdown()
    pointer = json.loads(lake.client(settings).get_object(settings.s3.lake_bucket,
                                                          lake.pointer(namespace, "items")).read())
    lake_namespace = pointer["path"].rstrip("/").split("/")[-2]
    return {"postgres": sink_contents.postgres(settings, namespace, table),
            "clickhouse": sink_contents.clickhouse(settings, namespace, table),
            "cassandra": sink_contents.cassandra(settings, keyspace, table),
            "lake": sink_contents.lake(settings, lake_namespace, table)}
