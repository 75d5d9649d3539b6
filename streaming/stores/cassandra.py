"""Cassandra: every verb of the store.

Writes: prepared upserts and deletes with ``USING TIMESTAMP = _version``, sent concurrently.

Cassandra resolves conflicting writes by their timestamps, so writing with the source position
as the timestamp makes the newest change win whatever the order of arrival, and a replayed batch
rewrites identical cells: idempotent without a read.

Rows are grouped by the replica that owns their partition (the driver's token map) into UNLOGGED
batches of at most ``batch_partitions`` rows, each sent token-aware to that replica, with a bounded
number in flight (``execute_concurrent``). A batch therefore never makes its coordinator forward
statements to other nodes, and stays under the server's
``unlogged_batch_across_partitions_warn_threshold`` (10 by default), so it logs no warning. One
request per ten rows instead of one per row is what lets a Python worker keep up (bench/streaming.py).
They are not atomic and need not be: every statement carries its own timestamp, so a batch retried
after a failure changes nothing twice. ``batch_partitions = 1`` sends single statements.

Tables: the pipeline's key is the partition key. Versions: Cassandra has no views and cannot
rename a table, so the pointer table ``<namespace>.serving_versions`` names each table's keyspace;
readers look it up (and cache it). Version 1's tables stay where they are.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from cassandra import OperationTimedOut, Timeout, Unavailable
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from kappa.settings import Settings
from streaming.stores.base import (BOOKKEEPING, MIGRATIONS, RECORD, Endpoint, Sink, Store, WriteToken,
                                  apply_migrations, check_existing, check_namespace, logged)
from streaming.tables import DELETED, VERSION, Table

# Spark SQL type (DataType.simpleString()) -> Cassandra's name for it (system_schema's). Its
# timestamp holds milliseconds: microseconds of a timestamp are cut there.
TYPES = {
    "boolean": "boolean", "tinyint": "tinyint", "smallint": "smallint", "int": "int", "bigint": "bigint",
    "float": "float", "double": "double", "string": "text", "binary": "blob", "date": "date",
    "timestamp": "timestamp", "timestamp_ntz": "timestamp",
}
REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


def connect(settings: Settings):
    c = settings.cassandra
    auth = None
    if c.username:
        from cassandra.auth import PlainTextAuthProvider

        auth = PlainTextAuthProvider(c.username, c.password)
    profile = ExecutionProfile(load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(c.local_dc)),
                               request_timeout=30)
    cluster = Cluster(c.hosts, port=c.port, auth_provider=auth, protocol_version=5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      # Reconnect soon after an outage rather than after Cassandra's 1-600 s schedule.
                      reconnection_policy=_QuickReconnect())
    return cluster, cluster.connect()


class _QuickReconnect:
    def new_schedule(self):
        while True:
            yield 1.0


class CassandraSink(Sink):
    name = "cassandra"
    transient = (NoHostAvailable, OperationTimedOut, Timeout, Unavailable, ConnectionError, TimeoutError)

    def __init__(self, settings: Settings, namespace: str, concurrency: int = 48, batch_partitions: int = 10) -> None:
        super().__init__(namespace)
        self.settings = settings
        self.concurrency = concurrency
        self.batch_partitions = batch_partitions
        self._cluster = self._session = None
        self._prepared: dict[tuple, tuple] = {}

    @property
    def address(self) -> str:
        c = self.settings.cassandra
        return f"{','.join(c.hosts)}:{c.port}"

    def _connected(self):
        if self._session is None:
            self._cluster, self._session = connect(self.settings)
        return self._session

    def _statements(self, spec: Table):
        # By the columns too: a table that gained a column (a newer schema) needs new statements.
        cached = (spec.name, tuple(spec.all_columns))
        if cached not in self._prepared:
            session = self._connected()
            columns = [f'"{c}"' for c in spec.all_columns]  # quoted: CQL names may not start with _
            upsert = session.prepare(
                f"INSERT INTO {self.namespace}.{spec.name} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)}) USING TIMESTAMP ?")
            delete = session.prepare(
                f"DELETE FROM {self.namespace}.{spec.name} USING TIMESTAMP ? "
                "WHERE " + " AND ".join(f'"{k}" = ?' for k in spec.key))
            self._prepared[cached] = (upsert, delete)
        return self._prepared[cached]

    def write(self, rows: pa.Table, spec: Table, token: WriteToken) -> None:
        if rows.num_rows == 0:
            return
        upsert, delete = self._statements(spec)
        columns = spec.all_columns
        # Column by column into Python values, timestamps as integer milliseconds (Cassandra's
        # precision, which the driver takes without building datetime objects).
        values = [_as_python(rows[c]) for c in columns]
        version, deleted = columns.index("_version"), columns.index("_deleted")
        keys = [columns.index(k) for k in spec.key]
        bound = [
            delete.bind((row[version], *(row[i] for i in keys))) if row[deleted] else upsert.bind((*row, row[version]))
            for row in zip(*values)
        ]
        requests = bound if self.batch_partitions <= 1 else self._by_replica(bound)
        for ok, result in execute_concurrent(self._session, [(r, None) for r in requests],
                                             concurrency=self.concurrency, raise_on_first_error=True):
            if not ok:
                raise result

    def _by_replica(self, statements: list) -> list:
        """Statements in UNLOGGED batches of ``batch_partitions``, each batch's rows owned by one replica."""
        token_map = self._cluster.metadata.token_map
        groups: dict = {}
        for statement in statements:
            token = token_map.token_class.from_key(statement.routing_key)
            replicas = token_map.get_replicas(self.namespace, token)
            groups.setdefault(replicas[0] if replicas else None, []).append(statement)
        batches = []
        for group in groups.values():
            for start in range(0, len(group), self.batch_partitions):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for statement in group[start:start + self.batch_partitions]:
                    batch.add(statement)
                batch.routing_key = group[start].routing_key  # token-aware: sent to that replica
                batch.keyspace = self.namespace
                batches.append(batch)
        return batches

    def reset(self) -> None:
        """Prepared statements survive an outage: the driver re-prepares them on the node."""

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
            self._cluster = self._session = None
            self._prepared.clear()


def _as_python(column: pa.ChunkedArray) -> list:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", column.type.tz), safe=False).cast(pa.int64())
    return column.to_pylist()


class CassandraStore(Store):
    name = "cassandra"
    sink_class = CassandraSink
    types = TYPES
    decimal = "decimal"

    def endpoint(self, settings: Settings) -> Endpoint:
        return Endpoint("cassandra", "cassandra.hosts/port", settings.cassandra.hosts[0], settings.cassandra.port)

    def ensure_table(self, settings: Settings, namespace: str, table: Table, job: str) -> list[str]:
        """The table, the key as its partition key; the columns added (all of them when created)."""
        qualified = f"{namespace}.{table.name}"
        cluster, session = connect(settings)
        try:
            session.execute(f'CREATE KEYSPACE IF NOT EXISTS "{namespace}" WITH replication = {REPLICATION}')
            found = list(session.execute("SELECT column_name, type, kind, position FROM system_schema.columns "
                                         "WHERE keyspace_name = %s AND table_name = %s", (namespace, table.name)))
            existing = {r.column_name: r.type for r in found}
            target = f'"{namespace}"."{table.name}"'
            if not existing:
                columns = [f'"{c}" {self.column_type(t)}' for c, t in table.columns]
                key = ", ".join(f'"{k}"' for k in table.key)
                session.execute(f'CREATE TABLE IF NOT EXISTS {target} ({", ".join(columns)}, "{VERSION}" bigint, '
                                f'"{DELETED}" boolean, PRIMARY KEY (({key})))')
                added = table.column_names
            else:
                key = [r.column_name for r in sorted((r for r in found if r.kind == "partition_key"),
                                                     key=lambda r: r.position)]
                added = check_existing(job, self.name, qualified, table, existing, key,
                                       lambda c, t: self.column_type(t))
                for column in added:
                    session.execute(f'ALTER TABLE {target} ADD "{column}" {self.column_type(table.type_of(column))}')
        finally:
            cluster.shutdown()
        return logged(self.name, qualified, added, bool(existing))

    def migrate(self, settings: Settings, namespace: str, pipeline: str, folder: Path) -> list[str]:
        check_namespace(namespace)
        cluster, session = connect(settings)
        try:
            session.execute(f"CREATE KEYSPACE IF NOT EXISTS {namespace} WITH replication = {REPLICATION}")
            session.execute(f"CREATE TABLE IF NOT EXISTS {namespace}.{MIGRATIONS} "
                            "(pipeline text, version text, applied_at timestamp, PRIMARY KEY (pipeline, version))")
            done = {r.version for r in session.execute(
                f"SELECT version FROM {namespace}.{MIGRATIONS} WHERE pipeline = %s", (pipeline,))}
            return apply_migrations(folder, self.name, namespace, done, session.execute, lambda version: session.execute(
                f"INSERT INTO {namespace}.{MIGRATIONS} (pipeline, version, applied_at) "
                "VALUES (%s, %s, toTimestamp(now()))", (pipeline, version)))
        finally:
            cluster.shutdown()

    def tables(self, settings: Settings, home: str) -> list[str]:
        cluster, session = connect(settings)
        try:
            return _tables(session, home)
        finally:
            cluster.shutdown()

    def cut_over(self, settings: Settings, namespace: str, target, current) -> list[str]:
        home = target.locations[self.name]
        cluster, session = connect(settings)
        try:
            tables = _tables(session, home)
            if not tables:
                return []
            session.execute(f'CREATE KEYSPACE IF NOT EXISTS "{namespace}" WITH replication = {REPLICATION}')
            session.execute(f'CREATE TABLE IF NOT EXISTS "{namespace}".{RECORD} (table_name text PRIMARY KEY, '
                            "keyspace_name text, pipeline text, version int, activated_at timestamp)")
            insert = session.prepare(f'INSERT INTO "{namespace}".{RECORD} (table_name, keyspace_name, pipeline, '
                                     "version, activated_at) VALUES (?, ?, ?, ?, toTimestamp(now()))")
            for table in tables:
                session.execute(insert, (table, home, target.pipeline, target.number))
            return [f"cassandra {namespace}.{RECORD}[{t}] -> {home}.{t}" for t in tables]
        finally:
            cluster.shutdown()

    def drop(self, settings: Settings, namespace: str, version) -> list[str]:
        home = version.locations[self.name]
        cluster, session = connect(settings)
        try:
            if home != namespace:
                session.execute(f'DROP KEYSPACE IF EXISTS "{home}"')
                return [f"cassandra keyspace {home}"]
            dropped = []  # version 1 shares the serving keyspace: only the tables the pointers moved away from
            pointed = {r.table_name: r.keyspace_name for r in
                       session.execute(f'SELECT table_name, keyspace_name FROM "{namespace}".{RECORD}')}
            for table in (t for t, keyspace in pointed.items() if keyspace != namespace):
                session.execute(f'DROP TABLE IF EXISTS "{namespace}"."{table}"')
                dropped.append(f"cassandra table {namespace}.{table}")
            return dropped
        finally:
            cluster.shutdown()


def _tables(session, keyspace: str) -> list[str]:
    rows = session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    return sorted(r.table_name for r in rows if r.table_name not in BOOKKEEPING)

