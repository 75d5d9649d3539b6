"""One serving table read back from all four sinks, as comparable {key: row} maps."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import clickhouse_connect
import psycopg2
import psycopg2.extras
from cassandra.util import Date as CassandraDate
from deltalake import DeltaTable

from streaming.stores import lake as lake_sink
from streaming.stores.cassandra import connect
from streaming.tables import Table


def comparable(value, exact: bool = False):
    """A value as every client can give it back: timestamps in UTC (at Cassandra's millisecond
    precision unless ``exact``), floats rounded (NaN as None), dates and bytes as Python's own."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value if exact else value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, CassandraDate):
        return value.date()
    return value


def _rows(rows, table: Table, current_only: bool = True, exact: bool = False) -> dict:
    out = {}
    for row in rows:
        if current_only and row["_deleted"]:
            continue
        key = tuple(row[k] for k in table.key)
        out[key] = {c: comparable(row[c], exact) for c in table.column_names + ["_version"]}
    return out


def postgres(settings, namespace: str, table: Table, exact: bool = False) -> dict:
    conn = psycopg2.connect(settings.postgres.dsn())
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(f"SELECT * FROM {namespace}.{table.name}")
            return _rows(cur.fetchall(), table, exact=exact)
    finally:
        conn.close()


def clickhouse(settings, namespace: str, table: Table, exact: bool = False) -> dict:
    ch = settings.clickhouse
    client = clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password)
    binary = {c: "bytes" for c, t in table.columns if t == "binary"}  # String columns holding bytes
    result = client.query(f"SELECT * FROM {namespace}.{table.name} FINAL", column_formats=binary)
    return _rows([dict(zip(result.column_names, r)) for r in result.result_rows], table, exact=exact)


def cassandra(settings, namespace: str, table: Table, exact: bool = False) -> dict:
    """Cassandra's timestamps hold milliseconds: they are compared at that precision even when ``exact``."""
    cluster, session = connect(settings)
    try:
        result = session.execute(f"SELECT * FROM {namespace}.{table.name}")
        return _rows([dict(zip(result.column_names, row)) for row in result], table)
    finally:
        cluster.shutdown()


def lake_table(settings, namespace: str, table: Table) -> DeltaTable:
    """The Delta table, read with the ``deltalake`` package (no Spark)."""
    return DeltaTable(lake_sink.uri(settings, namespace, table.name), storage_options=lake_sink.storage_options(settings))


def lake_changes(settings, namespace: str, table: Table) -> list[dict]:
    return lake_table(settings, namespace, table).to_pyarrow_table().to_pylist()


def lake(settings, namespace: str, table: Table, exact: bool = False) -> dict:
    """The lake keeps every change: the newest version per key is the current row."""
    latest = {}
    for row in lake_changes(settings, namespace, table):
        key = tuple(row[k] for k in table.key)
        if key not in latest or row["_version"] > latest[key]["_version"]:
            latest[key] = row
    return _rows(latest.values(), table, exact=exact)


def all_sinks(settings, namespace: str, table: Table, exact: bool = False) -> dict[str, dict]:
    return {"postgres": postgres(settings, namespace, table, exact),
            "clickhouse": clickhouse(settings, namespace, table, exact),
            "cassandra": cassandra(settings, namespace, table), "lake": lake(settings, namespace, table, exact)}


def key_counts(settings, namespace: str, table: Table) -> dict[str, int]:
    """How many keys each sink holds (live rows; the lake: distinct keys of its changes)."""
    conn = psycopg2.connect(settings.postgres.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {namespace}.{table.name} WHERE NOT _deleted")
            postgres_count = cur.fetchone()[0]
    finally:
        conn.close()
    ch = settings.clickhouse
    client = clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password)
    clickhouse_count = client.query(f"SELECT count() FROM {namespace}.{table.name} FINAL WHERE NOT _deleted").result_rows[0][0]
    cluster, session = connect(settings)
    try:
        cassandra_count = session.execute(f"SELECT count(*) FROM {namespace}.{table.name}", timeout=120).one()[0]
    finally:
        cluster.shutdown()
    keys = lake_table(settings, namespace, table).to_pyarrow_table(columns=list(table.key))
    lake_count = keys.group_by(list(table.key)).aggregate([]).num_rows
    return {"postgres": postgres_count, "clickhouse": clickhouse_count, "cassandra": cassandra_count,
            "lake": lake_count}
