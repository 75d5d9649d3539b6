"""A store that exists only for the tests: SQLite, one database file per namespace.

It shows what adding a store to the platform takes: one module like this (a
:class:`~streaming.stores.base.Store` with its verbs and a :class:`~streaming.stores.base.Sink`
that writes a partition idempotently) and one line in :data:`streaming.stores.REGISTRY`. The live
job and a replay then write it through the same executors' path as every other store.
The database files are in ``$KAPPA_SQLITE_STORE`` (read when the store is made, on the driver; the
store travels to the executors with the batch plan).
"""
from __future__ import annotations

import datetime
import decimal
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from kappa.errors import Refused
from kappa.settings import Settings
from streaming.stores.base import Endpoint, Sink, Store, WriteToken, check_existing, logged
from streaming.tables import DELETED, VERSION, Table

TYPES = {"boolean": "INTEGER", "tinyint": "INTEGER", "smallint": "INTEGER", "int": "INTEGER", "bigint": "INTEGER",
         "float": "REAL", "double": "REAL", "string": "TEXT", "binary": "BLOB", "date": "TEXT", "timestamp": "TEXT",
         "timestamp_ntz": "TEXT"}


@contextmanager
def _connect(folder: Path, namespace: str) -> Iterator[sqlite3.Connection]:
    """The namespace's database, committed (or rolled back) and closed after the block."""
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / f"{namespace}.db", timeout=30)
    try:
        with db:
            yield db
    finally:
        db.close()


class SqliteStore(Store):
    name = "sqlite"
    types = TYPES
    decimal = "TEXT"

    def __init__(self) -> None:
        self.folder = Path(os.environ.get("KAPPA_SQLITE_STORE", Path(tempfile.gettempdir()) / "kappa-sqlite-store"))

    def endpoint(self, settings: Settings) -> Endpoint:
        return Endpoint("sqlite", "KAPPA_SQLITE_STORE", str(self.folder), 0)

    def sink(self, settings: Settings, namespace: str) -> SqliteSink:
        return SqliteSink(self.folder, namespace)

    def ensure_table(self, settings: Settings, namespace: str, table: Table, job: str) -> list[str]:
        with _connect(self.folder, namespace) as db:
            info = db.execute(f'PRAGMA table_info("{table.name}")').fetchall()  # (cid, name, type, notnull, dflt, pk)
            existing = {row[1]: row[2] for row in info}
            if not existing:
                columns = [f'"{c}" {self.column_type(t)}' for c, t in table.columns]
                key = ", ".join(f'"{k}"' for k in table.key)
                db.execute(f'CREATE TABLE "{table.name}" ({", ".join(columns)}, "{VERSION}" INTEGER NOT NULL, '
                           f'"{DELETED}" INTEGER NOT NULL, PRIMARY KEY ({key}))')
                added = table.column_names
            else:
                key = [row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]
                added = check_existing(job, self.name, f"{namespace}.{table.name}", table, existing, key,
                                       lambda c, t: self.column_type(t))
                for column in added:
                    db.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{column}" {self.column_type(table.type_of(column))}')
        return logged(self.name, f"{namespace}.{table.name}", added, bool(existing))

    def tables(self, settings: Settings, home: str) -> list[str]:
        with _connect(self.folder, home) as db:
            return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))

    def cut_over(self, settings: Settings, namespace: str, target, current) -> list[str]:
        raise Refused("the sqlite test store keeps no serving versions")

    def drop(self, settings: Settings, namespace: str, version) -> list[str]:
        home = version.locations[self.name]
        if home == namespace:
            return []
        (self.folder / f"{home}.db").unlink(missing_ok=True)
        return [f"sqlite {home}.db"]


class SqliteSink(Sink):
    name = "sqlite"
    transient = (sqlite3.OperationalError,)  # "database is locked": another partition writes

    def __init__(self, folder: Path, namespace: str) -> None:
        super().__init__(namespace)
        self.folder = folder

    @property
    def address(self) -> str:
        return str(self.folder / f"{self.namespace}.db")

    def write(self, rows: pa.Table, spec: Table, token: WriteToken) -> None:
        """An upsert guarded by the version: a rewritten partition changes nothing it wrote before."""
        if rows.num_rows == 0:
            return
        columns = spec.all_columns
        quoted = ", ".join(f'"{c}"' for c in columns)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in spec.value_columns)
        key = ", ".join(f'"{k}"' for k in spec.key)
        values = [tuple(_plain(row[c]) for c in columns) for row in rows.select(columns).to_pylist()]
        with _connect(self.folder, self.namespace) as db:
            db.executemany(f'INSERT INTO "{spec.name}" ({quoted}) VALUES ({", ".join("?" for _ in columns)}) '
                           f'ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE excluded."{VERSION}" > "{VERSION}"',
                           values)


def _plain(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def rows(folder: Path, namespace: str, table: str) -> list[tuple]:
    """Every row of a table, ordered by its first column (for the tests' comparisons)."""
    with _connect(folder, namespace) as db:
        return db.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
