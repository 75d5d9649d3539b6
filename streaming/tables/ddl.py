"""A serving table in each store: created when missing, evolved when the schema gained columns.

What a job does at the start of every query, before its first batch. The table's columns
(:func:`streaming.tables.derive`) are compared with what the store holds:
- a missing table is created (with its namespace), as the platform lays out every serving table:
  PostgreSQL with a primary key and a ``<table>_current`` view without tombstones, ClickHouse as
  ``ReplacingMergeTree(_version, _deleted)`` ordered by the key with an ``_ingested_at`` column,
  Cassandra with the key as partition key;
- a column the schema gained is added (nullable: rows written before read null);
- a column the store has and the schema no longer has stays (new rows leave it null);
- a column whose type changed, or a different key, cannot be applied in place: refused with
  :class:`TableError`, naming the job, column, store and what to do.
The Delta table of the lake is kept the same way by :func:`streaming.sinks.lake.ensure_table`.
"""
from __future__ import annotations

import logging

from kappa.settings import Settings
from streaming.tables import DELETED, VERSION, Table, TableError
from streaming.tables.types import store_type

log = logging.getLogger(__name__)


def check_existing(job: str, store: str, qualified: str, table: Table, existing: dict[str, str],
                   key: list[str], types) -> list[str]:
    """The table's columns ``existing`` (name -> store type) lacks; raises on a type or key change."""
    if list(key) != list(table.key):
        raise TableError(f"pipeline {job}: {store} table {qualified} has the key {key}, the pipeline's key is "
                         f"{list(table.key)}: a store cannot change a table's key in place; set 'key' in the "
                         "pipeline file to the table's key, or write to a new namespace (or drop the table) and replay")
    missing = []
    for column, spark_type in table.columns:
        wanted = types(column, spark_type)
        have = existing.get(column)
        if have is None:
            missing.append(column)
        elif have != wanted:
            raise TableError(f"pipeline {job}: column {column} of {store} table {qualified} is {have}, the schema now "
                             f"makes it {wanted} (Spark {spark_type}): a store cannot change a column's type in "
                             "place. Keep the field's type and add a field with a new name, or write to a new "
                             "namespace (or drop the table) and replay")
    return missing


def _quoted(name: str, quote: str = '"') -> str:
    return f"{quote}{name}{quote}"


def postgres(settings: Settings, namespace: str, table: Table, job: str) -> list[str]:
    """The table and its ``_current`` view in PostgreSQL; the columns added (all of them when created)."""
    import psycopg2

    qualified = f"{namespace}.{table.name}"
    conn = psycopg2.connect(settings.postgres.dsn(), application_name="kappa-tables")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tables:{qualified}",))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(namespace)}")
            cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                        (f'"{namespace}"."{table.name}"',))
            existing = dict(cur.fetchall())
            target = f"{_quoted(namespace)}.{_quoted(table.name)}"
            if not existing:
                columns = [f"{_quoted(c)} {store_type('postgres', t)}" for c, t in table.columns]
                cur.execute(f"CREATE TABLE {target} ({', '.join(columns)}, "
                            f"{VERSION} bigint NOT NULL, {DELETED} boolean NOT NULL DEFAULT false, "
                            f"PRIMARY KEY ({', '.join(_quoted(k) for k in table.key)}))")
                added = table.column_names
            else:
                cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
                            "ORDER BY array_position(i.indkey, a.attnum)", (f'"{namespace}"."{table.name}"',))
                key = [r[0] for r in cur.fetchall()]
                added = check_existing(job, "postgres", qualified, table, existing, key,
                                       lambda c, t: store_type("postgres", t))
                for column in added:
                    cur.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {_quoted(column)} "
                                f"{store_type('postgres', table.type_of(column))}")
            if added:  # SELECT * is expanded when a view is made: remake it to show new columns
                cur.execute(f"CREATE OR REPLACE VIEW {_quoted(namespace)}.{_quoted(table.name + '_current')} AS "
                            f"SELECT * FROM {target} WHERE NOT {DELETED}")
    finally:
        conn.close()
    return _logged("postgres", qualified, added, bool(existing))


def clickhouse(settings: Settings, namespace: str, table: Table, job: str) -> list[str]:
    """The ReplacingMergeTree table in ClickHouse; the columns added (all of them when created)."""
    from streaming.sinks.clickhouse import client as clickhouse_client

    qualified = f"{namespace}.{table.name}"
    client = clickhouse_client(settings)
    try:
        def wanted(column: str, spark_type: str) -> str:
            base = store_type("clickhouse", spark_type)
            return base if column in table.key else f"Nullable({base})"

        found = client.query("SELECT name, type FROM system.columns WHERE database = {db:String} AND "
                             "table = {t:String} ORDER BY position", parameters={"db": namespace, "t": table.name})
        existing = dict(found.result_rows)
        target = f"`{namespace}`.`{table.name}`"
        if not existing:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{namespace}`")
            columns = [f"`{c}` {wanted(c, t)}" for c, t in table.columns]
            client.command(
                f"CREATE TABLE IF NOT EXISTS {target} ({', '.join(columns)}, `{VERSION}` Int64, `{DELETED}` UInt8, "
                "`_ingested_at` DateTime64(3, 'UTC') MATERIALIZED now64(3)) "
                f"ENGINE = ReplacingMergeTree({VERSION}, {DELETED}) ORDER BY ({', '.join(f'`{k}`' for k in table.key)}) "
                "SETTINGS non_replicated_deduplication_window = 10000")
            added = table.column_names
        else:
            sorting = client.query("SELECT sorting_key FROM system.tables WHERE database = {db:String} AND "
                                   "name = {t:String}", parameters={"db": namespace, "t": table.name}).result_rows
            # "order_id", "(order_id)" or "site, thing_id", as the table was created
            expression = sorting[0][0].strip().removeprefix("(").removesuffix(")") if sorting else ""
            key = [k.strip().strip("`") for k in expression.split(",") if k.strip()]
            added = check_existing(job, "clickhouse", qualified, table, existing, key, wanted)
            for column in added:
                client.command(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS `{column}` "
                               f"{wanted(column, table.type_of(column))}")
    finally:
        client.close()
    return _logged("clickhouse", qualified, added, bool(existing))


def cassandra(settings: Settings, namespace: str, table: Table, job: str, replication: str | None = None) -> list[str]:
    """The table in Cassandra (the key as its partition key); the columns added (all of them when created)."""
    from streaming.sinks.cassandra import connect

    qualified = f"{namespace}.{table.name}"
    cluster, session = connect(settings)
    try:
        replication = replication or "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        session.execute(f'CREATE KEYSPACE IF NOT EXISTS "{namespace}" WITH replication = {replication}')
        found = list(session.execute("SELECT column_name, type, kind, position FROM system_schema.columns "
                                     "WHERE keyspace_name = %s AND table_name = %s", (namespace, table.name)))
        existing = {r.column_name: r.type for r in found}
        target = f'"{namespace}"."{table.name}"'
        if not existing:
            columns = [f'"{c}" {store_type("cassandra", t)}' for c, t in table.columns]
            session.execute(f'CREATE TABLE IF NOT EXISTS {target} ({", ".join(columns)}, "{VERSION}" bigint, '
                            f'"{DELETED}" boolean, PRIMARY KEY (({", ".join(_quoted(k) for k in table.key)})))')
            added = table.column_names
        else:
            key = [r.column_name for r in sorted((r for r in found if r.kind == "partition_key"),
                                                 key=lambda r: r.position)]
            added = check_existing(job, "cassandra", qualified, table, existing, key,
                                   lambda c, t: store_type("cassandra", t))
            for column in added:
                session.execute(f'ALTER TABLE {target} ADD "{column}" {store_type("cassandra", table.type_of(column))}')
    finally:
        cluster.shutdown()
    return _logged("cassandra", qualified, added, bool(existing))


def _logged(store: str, qualified: str, added: list[str], existed: bool) -> list[str]:
    if added and existed:
        log.info("%s table %s: added columns %s (the schema gained them)", store, qualified, added)
    elif added:
        log.info("%s table %s: created", store, qualified)
    return added


ENSURE = {"postgres": postgres, "clickhouse": clickhouse, "cassandra": cassandra}
