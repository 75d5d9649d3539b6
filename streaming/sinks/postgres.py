"""PostgreSQL: COPY into a staging table, then one upsert guarded by the version.

``INSERT ... ON CONFLICT DO UPDATE ... WHERE target._version < excluded._version``: a replayed or
late batch changes nothing it already wrote or that something newer overwrote. Deletes are
tombstones (``_deleted``); the ``*_current`` views hide them.
"""
from __future__ import annotations

import io

import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv

from settings import Settings
from streaming.tables import Table


class PostgresSink:
    name = "postgres"

    def __init__(self, settings: Settings, namespace: str) -> None:
        self.namespace = namespace
        self._conn = psycopg2.connect(settings.postgres.dsn(), application_name="kappa-streaming")

    def write(self, table: pa.Table, batch_id: int, spec: Table) -> None:
        if table.num_rows == 0:
            return
        columns = spec.all_columns
        buffer = io.BytesIO()
        pacsv.write_csv(table.select(columns), buffer,
                        pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        buffer.seek(0)
        stage = f"stage_{spec.name}"
        target = f"{self.namespace}.{spec.name}"
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in spec.value_columns)
        with self._conn, self._conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            cur.copy_expert(f"COPY {stage} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer)
            cur.execute(
                f"INSERT INTO {target} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage} "
                f"ON CONFLICT ({', '.join(spec.key)}) DO UPDATE SET {updates} "
                f"WHERE {target}._version < EXCLUDED._version")

    def close(self) -> None:
        self._conn.close()
