"""PostgreSQL: COPY into a staging table, then one upsert guarded by the version.

``INSERT ... ON CONFLICT DO UPDATE ... WHERE target._version < excluded._version``: a replayed or
late batch changes nothing it already wrote or that something newer overwrote. Deletes are
tombstones (``_deleted``); the ``*_current`` views hide them. Partitions of one batch hold
disjoint keys, so their upserts never wait for each other's row locks.
"""
from __future__ import annotations

import io
import zlib

import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv

from kappa.settings import Settings
from streaming.sinks.base import Sink, WriteToken
from streaming.tables import Table


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
