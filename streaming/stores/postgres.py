"""PostgreSQL: every verb of the store.

Writes: COPY into a staging table, then one upsert guarded by the version, ``INSERT ... ON
CONFLICT DO UPDATE ... WHERE target._version < excluded._version``: a replayed or late batch
changes nothing it already wrote or that something newer overwrote. Deletes are tombstones
(``_deleted``); the ``<table>_current`` views hide them. Partitions of one batch hold disjoint
keys, so their upserts never wait for each other's row locks.

Tables: a primary key on the pipeline's key and a ``<table>_current`` view without tombstones.
Versions: the serving names are views over a version's tables and views; a cut-over drops and
re-creates all of a pipeline's in one transaction, which also holds the versions record (it lives
in PostgreSQL: :mod:`streaming.versions`), so a reader waits for it and then sees the new version.
"""
from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv

from kappa.settings import Settings
from streaming.stores.base import (BOOKKEEPING, MIGRATIONS, RECORD, Sink, Store, WriteToken,
                                  apply_migrations, check_existing, check_namespace, logged)
from streaming.tables import DELETED, VERSION, Table

# Spark SQL type -> PostgreSQL's name for it (format_type's).
TYPES = {
    "boolean": "boolean", "tinyint": "smallint", "smallint": "smallint", "int": "integer", "bigint": "bigint",
    "float": "real", "double": "double precision", "string": "text", "binary": "bytea", "date": "date",
    "timestamp": "timestamp with time zone", "timestamp_ntz": "timestamp without time zone",
}


def connect(settings: Settings, purpose: str = "kappa-tables"):
    return psycopg2.connect(settings.postgres.dsn(), application_name=purpose[:63], connect_timeout=10)


def quoted(name: str) -> str:
    return f'"{name}"'


class PostgresSink(Sink):
    name = "postgres"
    # The server went away (OperationalError) or the connection it left is closed (InterfaceError).
    transient = (psycopg2.OperationalError, psycopg2.InterfaceError, ConnectionError, TimeoutError)

    def __init__(self, settings: Settings, namespace: str) -> None:
        super().__init__(namespace)
        self.settings = settings
        self._conn = None

    @property
    def address(self) -> str:
        return f"{self.settings.postgres.host}:{self.settings.postgres.port}"

    def write(self, rows: pa.Table, spec: Table, token: WriteToken) -> None:
        if rows.num_rows == 0:
            return
        if self._conn is None:
            self._conn = psycopg2.connect(self.settings.postgres.dsn(), application_name="kappa-streaming",
                                          connect_timeout=10)
        buffer = io.BytesIO()
        pacsv.write_csv(_csv_ready(rows.select(spec.all_columns)), buffer,
                        pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        buffer.seek(0)
        columns = ", ".join(f'"{c}"' for c in spec.all_columns)
        # Named by the columns: a staging table made before the table gained a column is not reused.
        stage = f"stage_{spec.name}_{zlib.crc32(columns.encode()):08x}"
        target = f'"{self.namespace}"."{spec.name}"'
        key = ", ".join(f'"{k}"' for k in spec.key)
        updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in spec.value_columns)
        with self._conn, self._conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            cur.copy_expert(f"COPY {stage} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
            cur.execute(
                f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} "
                f"ON CONFLICT ({key}) DO UPDATE SET {updates} "
                f"WHERE {target}._version < EXCLUDED._version")

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None


def _csv_ready(rows: pa.Table) -> pa.Table:
    """Binary columns as PostgreSQL's bytea text (``\\x`` + hex): CSV has no bytes of its own."""
    for index, field in enumerate(rows.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            text = pa.array([None if v is None else "\\x" + v.hex() for v in rows.column(index).to_pylist()],
                            pa.string())
            rows = rows.set_column(index, field.name, text)
    return rows


class PostgresStore(Store):
    name = "postgres"
    sink_class = PostgresSink
    moves_first_version = True
    types = TYPES
    decimal = "numeric({precision},{scale})"

    def ensure_table(self, settings: Settings, namespace: str, table: Table, job: str) -> list[str]:
        """The table and its ``_current`` view; the columns added (all of them when created)."""
        qualified = f"{namespace}.{table.name}"
        conn = connect(settings)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tables:{qualified}",))
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(namespace)}")
                cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE "
                            "a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                            (f'"{namespace}"."{table.name}"',))
                existing = dict(cur.fetchall())
                target = f"{quoted(namespace)}.{quoted(table.name)}"
                if not existing:
                    columns = [f"{quoted(c)} {self.column_type(t)}" for c, t in table.columns]
                    cur.execute(f"CREATE TABLE {target} ({', '.join(columns)}, "
                                f"{VERSION} bigint NOT NULL, {DELETED} boolean NOT NULL DEFAULT false, "
                                f"PRIMARY KEY ({', '.join(quoted(k) for k in table.key)}))")
                    added = table.column_names
                else:
                    cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary "
                                "ORDER BY array_position(i.indkey, a.attnum)", (f'"{namespace}"."{table.name}"',))
                    key = [r[0] for r in cur.fetchall()]
                    added = check_existing(job, self.name, qualified, table, existing, key,
                                           lambda c, t: self.column_type(t))
                    for column in added:
                        cur.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {quoted(column)} "
                                    f"{self.column_type(table.type_of(column))}")
                if added:  # SELECT * is expanded when a view is made: remake it to show new columns
                    cur.execute(f"CREATE OR REPLACE VIEW {quoted(namespace)}.{quoted(table.name + '_current')} AS "
                                f"SELECT * FROM {target} WHERE NOT {DELETED}")
        finally:
            conn.close()
        return logged(self.name, qualified, added, bool(existing))

    def migrate(self, settings: Settings, namespace: str, pipeline: str, folder: Path) -> list[str]:
        check_namespace(namespace)
        conn = connect(settings, "kappa-migrations")
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrations:{namespace}",))
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
                cur.execute(f"CREATE TABLE IF NOT EXISTS {namespace}.{MIGRATIONS} (pipeline text, version text, "
                            "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, version))")
                cur.execute(f"SELECT version FROM {namespace}.{MIGRATIONS} WHERE pipeline = %s", (pipeline,))
                done = {r[0] for r in cur.fetchall()}
                return apply_migrations(folder, self.name, namespace, done, cur.execute, lambda version: cur.execute(
                    f"INSERT INTO {namespace}.{MIGRATIONS} (pipeline, version) VALUES (%s, %s)", (pipeline, version)))
        finally:
            conn.close()

    def tables(self, settings: Settings, home: str) -> list[str]:
        conn = connect(settings, "kappa-versions")
        try:
            with conn, conn.cursor() as cur:
                return [name for name, _ in _relations(cur, home)]
        finally:
            conn.close()

    def cut_over(self, settings: Settings, namespace: str, target, current,
                 record: Callable[[object], None] | None = None) -> list[str]:
        """The serving views of ``namespace`` over ``target``'s tables and views, in one transaction;
        ``record(cursor)`` runs last in it (the versions record's update), so the record says a
        version is active exactly when PostgreSQL's readers see it."""
        conn = connect(settings, "kappa-versions")
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SET LOCAL lock_timeout = '30s'")
                cur.execute(f"LOCK TABLE {quoted(namespace)}.{RECORD} IN EXCLUSIVE MODE")
                home = target.locations[self.name]
                relations = _relations(cur, home)
                serving = dict(_relations(cur, namespace))
                moved_to = current.own_namespace
                first = current.locations[self.name] == namespace  # version 1's own tables: they move out
                for name, _kind in reversed(relations):  # views first: a table's view goes before it
                    if serving.get(name) == "v" and not first:
                        cur.execute(f"DROP VIEW {quoted(namespace)}.{quoted(name)}")
                for name, _kind in relations:
                    kind = serving.get(name)
                    if kind is not None and first:
                        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(moved_to)}")
                        what = "VIEW" if kind == "v" else "TABLE"
                        cur.execute(f"ALTER {what} {quoted(namespace)}.{quoted(name)} SET SCHEMA {quoted(moved_to)}")
                    cur.execute(f"CREATE VIEW {quoted(namespace)}.{quoted(name)} AS "
                                f"SELECT * FROM {quoted(home)}.{quoted(name)}")
                if record is not None:
                    record(cur)
                return [f"postgres {namespace}.{name} -> {home}.{name}" for name, _ in relations]
        finally:
            conn.close()

    def refresh(self, settings: Settings, namespace: str, home: str, table: str) -> None:
        conn = connect(settings, "kappa-versions")
        try:
            with conn, conn.cursor() as cur:
                for name in (table, f"{table}_current"):
                    cur.execute(f"CREATE OR REPLACE VIEW {quoted(namespace)}.{quoted(name)} AS "
                                f"SELECT * FROM {quoted(home)}.{quoted(name)}")
        finally:
            conn.close()

    def drop(self, settings: Settings, namespace: str, version) -> list[str]:
        home = version.locations[self.name]
        if home == namespace:  # version 1's tables moved out at its first cut-over: nothing of it is here
            return []
        conn = connect(settings, "kappa-versions")
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {quoted(home)} CASCADE")
        finally:
            conn.close()
        return [f"postgres schema {home}"]


def _relations(cur, schema: str) -> list[tuple[str, str]]:
    """(name, kind) of a schema's tables then views, without the namespace's bookkeeping."""
    cur.execute("SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v') ORDER BY c.relkind <> 'v' DESC, c.relname",
                (schema,))
    return [(name, kind) for name, kind in cur.fetchall() if name not in BOOKKEEPING]

