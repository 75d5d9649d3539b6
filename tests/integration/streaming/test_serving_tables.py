"""Serving tables derived from the schema: created in every store, evolved, refused when a store cannot follow."""
from datetime import date, datetime, timezone
from decimal import Decimal

import clickhouse_connect
import psycopg2
import pyarrow as pa
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from schemas import contracts

from streaming.plan import JobConfig, serving_table
from streaming.stores import lake
from streaming.stores.base import WriteToken
from streaming.stores.cassandra import CassandraSink, connect
from streaming.stores.clickhouse import ClickHouseSink
from streaming.stores.postgres import PostgresSink
from streaming import stores
from streaming.tables import Table, TableError
from tests.integration.serving_tables import ORDERS, ORDERS_JOB, customers_dimension

UTC = timezone.utc
EVERY_TYPE = Table("things", ("site", "thing_id"), (
    ("site", "string"), ("thing_id", "bigint"), ("small", "smallint"), ("count", "int"), ("ratio", "float"),
    ("score", "double"), ("price", "decimal(12,3)"), ("active", "boolean"), ("day", "date"),
    ("seen_at", "timestamp"), ("blob", "binary"), ("note", "string"), ("event_id", "string"),
    ("event_time", "timestamp"),
))
ROW = {"site": "eu", "thing_id": 2**40, "small": -7, "count": 123456, "ratio": 0.5, "score": 2.25,
       "price": Decimal("1234.567"), "active": True, "day": date(2026, 12, 2),
       "seen_at": datetime(2026, 12, 2, 10, 11, 12, 345000, tzinfo=UTC), "blob": b"\x00\xffkappa",
       "note": "x", "event_id": "e1", "event_time": datetime(2026, 12, 2, 10, 0, tzinfo=UTC)}
ARROW = {"string": pa.string(), "bigint": pa.int64(), "smallint": pa.int16(), "int": pa.int32(), "float": pa.float32(),
         "double": pa.float64(), "decimal(12,3)": pa.decimal128(12, 3), "boolean": pa.bool_(), "date": pa.date32(),
         "timestamp": pa.timestamp("us", "UTC"), "binary": pa.binary()}


def _arrow(table: Table, row: dict) -> pa.Table:
    columns = {c: pa.array([row.get(c)], ARROW[t]) for c, t in table.columns}
    return pa.table({**columns, "_version": pa.array([1], pa.int64()), "_deleted": pa.array([False])})


def _read_back(settings, namespace: str, name: str) -> dict[str, dict]:
    """The one row of ``name`` in each store, values as Python (each client's own types normalised)."""
    conn = psycopg2.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {namespace}.{name}_current")
        pg = dict(zip([d.name for d in cur.description], cur.fetchone()))
    conn.close()
    pg["blob"] = bytes(pg["blob"])
    ch_settings = settings.clickhouse
    ch_client = clickhouse_connect.get_client(host=ch_settings.host, port=ch_settings.port)
    result = ch_client.query(f"SELECT * FROM {namespace}.{name} FINAL", column_formats={"blob": "bytes"})
    ch = dict(zip(result.column_names, result.result_rows[0]))
    cluster, session = connect(settings)
    found = session.execute(f"SELECT * FROM {namespace}.{name}").one()
    cassandra = dict(zip(found._fields, found))
    cluster.shutdown()
    cassandra["day"] = cassandra["day"].date()
    for values in (pg, ch, cassandra):
        for column in ("seen_at", "event_time"):
            moment = values[column]
            values[column] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        values["active"] = bool(values["active"])
    return {"postgres": pg, "clickhouse": ch, "cassandra": cassandra}


def test_the_orders_job_derives_its_table_from_the_registry(spark, settings, registry_url, unique):
    topic = f"it.{unique}.derive.orders"
    SchemaRegistryClient({"url": registry_url}).register_schema(
        f"{topic}-value", Schema(contracts.contract("shop.api.orders").schema, "AVRO"))
    customers_dimension(settings, f"derive_{unique}")
    config = JobConfig(name=f"derive-{unique}", topic=topic, namespace=f"derive_{unique}")
    derived = serving_table(ORDERS_JOB, config, settings, spark)
    assert derived == ORDERS


def test_a_table_is_created_evolved_and_guarded_in_every_store(spark, settings, unique):
    namespace = f"tables_{unique}"
    first = Table(EVERY_TYPE.name, EVERY_TYPE.key, tuple(c for c in EVERY_TYPE.columns if c[0] != "note"))
    for store in stores.serving():
        assert stores.get(store).ensure_table(settings, namespace, first, "things-job") == first.column_names
        assert stores.get(store).ensure_table(settings, namespace, first, "things-job") == []  # idempotent
    location = lake.ensure_table(spark, settings, namespace, first, "things-job")

    token = WriteToken("things-job", 0, 0)
    sinks = [PostgresSink(settings, namespace), ClickHouseSink(settings, namespace), CassandraSink(settings, namespace)]
    for sink in sinks:
        sink.write(_arrow(first, ROW), first, token)
    expected = {c: ROW[c] for c in first.column_names}
    for store, values in _read_back(settings, namespace, first.name).items():
        assert {c: values[c] for c in first.column_names} == expected, store

    # The schema gained an optional field: every store gains the column, the old row reads null.
    for store in stores.serving():
        assert stores.get(store).ensure_table(settings, namespace, EVERY_TYPE, "things-job") == ["note"]
    lake.ensure_table(spark, settings, namespace, EVERY_TYPE, "things-job")
    assert dict((f.name, f.dataType.simpleString())
                for f in spark.read.format("delta").load(location).schema.fields)["note"] == "string"
    for store, values in _read_back(settings, namespace, first.name).items():
        assert values["note"] is None, store
    newer = {**ROW, "thing_id": 1, "note": "new"}
    for sink in sinks:
        sink.write(_arrow(EVERY_TYPE, newer), EVERY_TYPE, WriteToken("things-job", 1, 0))
        sink.close()

    # A type change or another key cannot be applied in place: refused, naming column, store and fix.
    retyped = Table(EVERY_TYPE.name, EVERY_TYPE.key,
                    tuple((c, "string" if c == "count" else t) for c, t in EVERY_TYPE.columns))
    for store in stores.serving():
        with pytest.raises(TableError, match=rf"things-job: column count of {store} table {namespace}.things is "
                                             ".* the schema now makes it .*add a field with a new name"):
            stores.get(store).ensure_table(settings, namespace, retyped, "things-job")
    with pytest.raises(TableError, match="column count of lake table"):
        lake.ensure_table(spark, settings, namespace, retyped, "things-job")
    rekeyed = Table(EVERY_TYPE.name, ("thing_id",), EVERY_TYPE.columns)
    for store in stores.serving():
        with pytest.raises(TableError, match=rf"{store} table {namespace}.things has the key \['site', 'thing_id'\]"):
            stores.get(store).ensure_table(settings, namespace, rekeyed, "things-job")
