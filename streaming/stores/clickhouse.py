"""ClickHouse: every verb of the store.

Writes: one Arrow insert per partition into ``ReplacingMergeTree(_version, _deleted)``. The
``insert_deduplication_token`` is derived from (query, batch, partition, table): a partition
rewritten after a crash is recognised and dropped by the server, and ReplacingMergeTree keeps the
highest version per key whatever arrives later.

Tables: ordered by the pipeline's key, with an ``_ingested_at`` column the server fills. Versions:
a view over the version's table is swapped in with ``EXCHANGE TABLES`` (atomic per table).
ClickHouse ignores ``FINAL`` on a view, so the view reads its table with ``FINAL``: readers see
merged rows, as ``FINAL`` on the table gives.
"""
from __future__ import annotations

from pathlib import Path

import clickhouse_connect
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.exceptions import OperationalError

from kappa.settings import Settings
from streaming.stores.base import (BOOKKEEPING, MIGRATIONS, Sink, Store, WriteToken, apply_migrations,
                                  check_existing, check_namespace, logged)
from streaming.tables import DELETED, VERSION, Table

# Spark SQL type -> ClickHouse's name for it (system.columns').
TYPES = {
    "boolean": "Bool", "tinyint": "Int8", "smallint": "Int16", "int": "Int32", "bigint": "Int64",
    "float": "Float32", "double": "Float64", "string": "String", "binary": "String", "date": "Date32",
    "timestamp": "DateTime64(6, 'UTC')", "timestamp_ntz": "DateTime64(6)",
}


def client(settings: Settings):
    ch = settings.clickhouse
    return clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password,
                                         secure=ch.secure)


class ClickHouseSink(Sink):
    name = "clickhouse"
    # Connection refused, reset or timed out; errors the server answers with are not retried.
    transient = (OperationalError, ConnectionError, TimeoutError)

    def __init__(self, settings: Settings, namespace: str) -> None:
        super().__init__(namespace)
        self.settings = settings
        self._client = None

    @property
    def address(self) -> str:
        return f"{self.settings.clickhouse.host}:{self.settings.clickhouse.port}"

    def write(self, rows: pa.Table, spec: Table, token: WriteToken) -> None:
        if rows.num_rows == 0:
            return
        data = rows.select(spec.all_columns)
        data = data.set_column(data.schema.get_field_index("_deleted"), "_deleted",
                               pc.cast(data["_deleted"], pa.uint8()))
        self.insert(data, spec.name, token)

    def insert(self, data: pa.Table, table: str, token: WriteToken) -> None:
        """Any Arrow table into ``<namespace>.<table>``, deduplicated by the write's token."""
        if self._client is None:
            self._client = client(self.settings)
        qualified = f"{self.namespace}.{table}"
        self._client.insert_arrow(qualified, data, settings={"insert_deduplication_token": token.for_table(qualified)})

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class ClickHouseStore(Store):
    name = "clickhouse"
    sink_class = ClickHouseSink
    moves_first_version = True
    types = TYPES
    decimal = "Decimal({precision}, {scale})"

    def ensure_table(self, settings: Settings, namespace: str, table: Table, job: str) -> list[str]:
        """The ReplacingMergeTree table; the columns added (all of them when created)."""
        qualified = f"{namespace}.{table.name}"
        ch = client(settings)
        try:
            def wanted(column: str, spark_type: str) -> str:
                base = self.column_type(spark_type)
                return base if column in table.key else f"Nullable({base})"

            found = ch.query("SELECT name, type FROM system.columns WHERE database = {db:String} AND "
                             "table = {t:String} ORDER BY position", parameters={"db": namespace, "t": table.name})
            existing = dict(found.result_rows)
            target = f"`{namespace}`.`{table.name}`"
            if not existing:
                ch.command(f"CREATE DATABASE IF NOT EXISTS `{namespace}`")
                columns = [f"`{c}` {wanted(c, t)}" for c, t in table.columns]
                ch.command(
                    f"CREATE TABLE IF NOT EXISTS {target} ({', '.join(columns)}, `{VERSION}` Int64, `{DELETED}` UInt8, "
                    "`_ingested_at` DateTime64(3, 'UTC') MATERIALIZED now64(3)) "
                    f"ENGINE = ReplacingMergeTree({VERSION}, {DELETED}) "
                    f"ORDER BY ({', '.join(f'`{k}`' for k in table.key)}) "
                    "SETTINGS non_replicated_deduplication_window = 10000")
                added = table.column_names
            else:
                sorting = ch.query("SELECT sorting_key FROM system.tables WHERE database = {db:String} AND "
                                   "name = {t:String}", parameters={"db": namespace, "t": table.name}).result_rows
                # "order_id", "(order_id)" or "site, thing_id", as the table was created
                expression = sorting[0][0].strip().removeprefix("(").removesuffix(")") if sorting else ""
                key = [k.strip().strip("`") for k in expression.split(",") if k.strip()]
                added = check_existing(job, self.name, qualified, table, existing, key, wanted)
                for column in added:
                    ch.command(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS `{column}` "
                               f"{wanted(column, table.type_of(column))}")
        finally:
            ch.close()
        return logged(self.name, qualified, added, bool(existing))

    def migrate(self, settings: Settings, namespace: str, pipeline: str, folder: Path) -> list[str]:
        check_namespace(namespace)
        ch = client(settings)
        try:
            ch.command(f"CREATE DATABASE IF NOT EXISTS {namespace}")
            ch.command(f"CREATE TABLE IF NOT EXISTS {namespace}.{MIGRATIONS} (pipeline String, version String, "
                       "applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY (pipeline, version)")
            done = {r[0] for r in ch.query(f"SELECT version FROM {namespace}.{MIGRATIONS} FINAL "
                                           "WHERE pipeline = {p:String}", parameters={"p": pipeline}).result_rows}
            return apply_migrations(folder, self.name, namespace, done, ch.command, lambda version: ch.insert(
                f"{namespace}.{MIGRATIONS}", [[pipeline, version]], column_names=["pipeline", "version"]))
        finally:
            ch.close()

    def tables(self, settings: Settings, home: str) -> list[str]:
        ch = client(settings)
        try:
            return sorted(_tables(ch, home))
        finally:
            ch.close()

    def cut_over(self, settings: Settings, namespace: str, target, current) -> list[str]:
        ch = client(settings)
        try:
            home = target.locations[self.name]
            tables = _tables(ch, home)
            serving = _tables(ch, namespace)
            moved_to = current.own_namespace
            for table, engine_of_version in tables.items():
                view = view_query(home, table, engine_of_version)
                engine = serving.get(table)
                if engine is None:
                    ch.command(f"CREATE VIEW `{namespace}`.`{table}` AS {view}")
                elif engine != "View":  # version 1's own table: it moves out, the view takes its name
                    ch.command(f"CREATE DATABASE IF NOT EXISTS `{moved_to}`")
                    ch.command(f"CREATE VIEW `{moved_to}`.`{table}` AS {view}")
                    ch.command(f"EXCHANGE TABLES `{namespace}`.`{table}` AND `{moved_to}`.`{table}`")
                else:
                    _swap_view(ch, namespace, table, view)
            return [f"clickhouse {namespace}.{t} -> {home}.{t}" for t in tables]
        finally:
            ch.close()

    def refresh(self, settings: Settings, namespace: str, home: str, table: str) -> None:
        ch = client(settings)
        try:
            _swap_view(ch, namespace, table, view_query(home, table, _tables(ch, home)[table]))
        finally:
            ch.close()

    def drop(self, settings: Settings, namespace: str, version) -> list[str]:
        home = version.locations[self.name]
        if home == namespace:  # version 1's tables moved out at its first cut-over
            return []
        ch = client(settings)
        try:
            ch.command(f"DROP DATABASE IF EXISTS `{home}`")
        finally:
            ch.close()
        return [f"clickhouse database {home}"]


def _tables(ch, database: str) -> dict[str, str]:
    """name -> engine of a database's tables, without the namespace's bookkeeping."""
    rows = ch.query("SELECT name, engine FROM system.tables WHERE database = {db:String}",
                    parameters={"db": database}).result_rows
    return {name: engine for name, engine in rows if name not in BOOKKEEPING}


def view_query(home: str, table: str, engine: str) -> str:
    """The serving view's query. ClickHouse ignores ``FINAL`` on a view, so the view applies it
    where the engine merges rows (Replacing-, Summing-, ...MergeTree): readers see merged rows."""
    plain = engine.replace("Replicated", "").replace("Shared", "") == "MergeTree" or not engine.endswith("MergeTree")
    return f"SELECT * FROM `{home}`.`{table}`" + ("" if plain else " FINAL")


def _swap_view(ch, namespace: str, table: str, view: str) -> None:
    nxt = f"{table}__next"
    ch.command(f"DROP TABLE IF EXISTS `{namespace}`.`{nxt}`")
    ch.command(f"CREATE VIEW `{namespace}`.`{nxt}` AS {view}")
    ch.command(f"EXCHANGE TABLES `{namespace}`.`{table}` AND `{namespace}`.`{nxt}`")
    ch.command(f"DROP TABLE `{namespace}`.`{nxt}`")

