"""Cassandra: every verb of the store.

Writes: prepared upserts and deletes with ``USING TIMESTAMP = _version``, sent concurrently.

Cassandra resolves conflicting writes by their timestamps, so writing with the source position
as the timestamp makes the newest change win whatever the order of arrival, and a replayed batch
rewrites identical cells: idempotent without a read.

The executors write with acsylla, a Python client on the Scylla/DataStax C++ driver: per row it
costs a third to a quarter of the CPU of cassandra-driver (bench/cassandra_clients.py), and
Cassandra's Python client was what bound a pipeline with all four stores. The verbs on the driver (tables,
migrations, versions) stay on cassandra-driver, whose serializers also give the sink its routing
keys and decimals.

Rows are grouped by the node that owns their partition (the ring's tokens, read from
``system.local``/``system.peers``, and the partitioner's Murmur3 hash of each row's key) into
UNLOGGED batches of at most ``batch_partitions`` rows, each sent token-aware to that node, with a
bounded number in flight. A batch therefore never makes its coordinator forward statements to other
nodes, and stays under the server's ``unlogged_batch_across_partitions_warn_threshold`` (10 by
default), so it logs no warning. One request per ten rows instead of one per row is what lets a
Python worker keep up. The batches are not atomic and need not be: every statement carries its own
timestamp, so a batch retried after a failure changes nothing twice. ``batch_partitions = 1``
sends single statements.

Tables: the pipeline's key is the partition key. Versions: Cassandra has no views and cannot
rename a table, so the pointer table ``<namespace>.serving_versions`` names each table's keyspace;
readers look it up (and cache it). Version 1's tables stay where they are.
"""
from __future__ import annotations

import asyncio
import bisect
import struct
from collections.abc import Callable
from pathlib import Path

import acsylla
import pyarrow as pa
import pyarrow.compute as pc
from acsylla import errors as acsylla_errors
from cassandra import cqltypes
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.murmur3 import murmur3
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
# Cassandra's type -> cassandra-driver's serializer of it (a key's bytes, which the ring hashes).
SERIALIZERS = {
    "boolean": "BooleanType", "tinyint": "ByteType", "smallint": "ShortType", "int": "Int32Type",
    "bigint": "LongType", "float": "FloatType", "double": "DoubleType", "text": "UTF8Type", "blob": "BytesType",
    "date": "SimpleDateType", "timestamp": "TimestampType", "decimal": "DecimalType",
}
REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
PROTOCOL = 4  # the C++ driver's newest non-beta protocol version


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


class Ring:
    """Which node owns a partition: the ring's tokens and their nodes, with the Murmur3 partitioner
    (Cassandra's default since 1.2; under another partitioner every row is one group)."""

    def __init__(self, tokens: dict[int, str]) -> None:
        self.tokens = sorted(tokens)
        self.nodes = [tokens[t] for t in self.tokens]
        self.single = len(set(self.nodes)) <= 1

    def owner(self, key: bytes) -> str:
        """The node owning ``key`` (a partition key's serialized bytes): the first token at or after its hash."""
        at = bisect.bisect_left(self.tokens, murmur3(key))
        return self.nodes[at % len(self.nodes)]

    @classmethod
    async def read(cls, session) -> Ring:
        local = (await session.execute(acsylla.create_statement(
            "SELECT partitioner, tokens FROM system.local"))).first()
        if local is None or not local.column_value("partitioner").endswith("Murmur3Partitioner"):
            return cls({})
        tokens = {int(t): "local" for t in local.column_value("tokens") or ()}
        for peer in await session.execute(acsylla.create_statement("SELECT peer, tokens FROM system.peers")):
            tokens.update({int(t): str(peer.column_value("peer")) for t in peer.column_value("tokens") or ()})
        return cls(tokens)


def routing_key(serializers: list[Callable[[object], bytes]]) -> Callable[[tuple], bytes]:
    """A function of a key's values to the partition key's bytes, as Cassandra hashes them (one
    column: its value's bytes; several: each as a 2-byte length, the bytes, then a 0 byte)."""
    if len(serializers) == 1:
        serialize = serializers[0]
        return lambda values: serialize(values[0])
    return lambda values: b"".join(struct.pack(">H", len(b)) + b + b"\x00"
                                   for b in (s(v) for s, v in zip(serializers, values)))


class CassandraSink(Sink):
    name = "cassandra"
    transient = (acsylla_errors.CassErrorLibNoHostsAvailable, acsylla_errors.CassErrorLibRequestTimedOut,
                 acsylla_errors.CassErrorLibUnableToConnect, acsylla_errors.CassErrorLibWriteError,
                 acsylla_errors.CassErrorLibNoStreams, acsylla_errors.CassErrorLibRequestQueueFull,
                 acsylla_errors.CassErrorServerUnavailable, acsylla_errors.CassErrorServerOverloaded,
                 acsylla_errors.CassErrorServerIsBootstrapping, acsylla_errors.CassErrorServerWriteTimeout,
                 acsylla_errors.CassExceptionConnectionError, ConnectionError, TimeoutError)

    def __init__(self, settings: Settings, namespace: str, concurrency: int = 48, batch_partitions: int = 10) -> None:
        super().__init__(namespace)
        self.settings = settings
        self.concurrency = concurrency
        self.batch_partitions = batch_partitions
        self._loop: asyncio.AbstractEventLoop | None = None  # the client's; every write runs on it
        self._session = self._ring = None
        self._prepared: dict[tuple, tuple] = {}

    @property
    def address(self) -> str:
        c = self.settings.cassandra
        return f"{','.join(c.hosts)}:{c.port}"

    async def _connected(self):
        if self._session is None:
            c = self.settings.cassandra
            cluster = acsylla.create_cluster(
                c.hosts, port=c.port, username=c.username, password=c.password, protocol_version=PROTOCOL,
                load_balance_dc_aware=c.local_dc, token_aware_routing=True,
                token_aware_routing_shuffle_replicas=False, request_timeout=30.0,
                # Reconnect soon after an outage rather than after the driver's 2-60 s schedule.
                constant_reconnect_delay_ms=1000,
                log_level="error")  # not its warning on every connect that Cassandra is no sharded Scylla
            self._session = await cluster.create_session()
            self._ring = await Ring.read(self._session)
        return self._session

    async def _statements(self, spec: Table, decimals: tuple[str, ...]):
        # By the columns too: a table that gained a column (a newer schema) needs new statements.
        cached = (spec.name, tuple(spec.columns))
        if cached not in self._prepared:
            session = await self._connected()
            # acsylla mis-encodes a decimal: the sink binds cassandra-driver's bytes of it as a blob.
            marker = {c: ("blobAsDecimal(?)" if c in decimals else "?") for c in spec.all_columns}
            columns = ", ".join(f'"{c}"' for c in spec.all_columns)  # quoted: CQL names may not start with _
            upsert = await session.create_prepared(
                f"INSERT INTO {self.namespace}.{spec.name} ({columns}) "
                f"VALUES ({', '.join(marker[c] for c in spec.all_columns)}) USING TIMESTAMP ?")
            delete = await session.create_prepared(
                f"DELETE FROM {self.namespace}.{spec.name} USING TIMESTAMP ? "
                "WHERE " + " AND ".join(f'"{k}" = {marker[k]}' for k in spec.key))
            self._prepared[cached] = (upsert, delete, routing_key([_serializer(spec.type_of(k)) for k in spec.key]))
        return self._prepared[cached]

    def write(self, rows: pa.Table, spec: Table, token: WriteToken) -> None:
        if rows.num_rows == 0:
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._write(rows, spec))

    async def _write(self, rows: pa.Table, spec: Table) -> None:
        session = await self._connected()
        columns = spec.all_columns
        decimals = tuple(c for c in columns if pa.types.is_decimal(rows.schema.field(c).type))
        upsert, delete, key_bytes = await self._statements(spec, decimals)
        values = [_bindable(rows[c]) for c in columns]
        version, deleted = columns.index(VERSION), columns.index(DELETED)
        keys = [columns.index(k) for k in spec.key]
        statements = [
            delete.bind([row[version], *(row[i] for i in keys)]) if row[deleted] else upsert.bind([*row, row[version]])
            for row in zip(*values)
        ]
        requests = statements if self.batch_partitions <= 1 else self._by_owner(statements, rows, spec, key_bytes)
        pending = iter(requests)

        async def sender():
            for request in pending:
                if isinstance(request, list):
                    batch = acsylla.create_batch_unlogged()
                    for statement in request:
                        batch.add_statement(statement)
                    await session.execute_batch(batch)
                else:
                    await session.execute(request)

        # Every sender runs to its end (its error kept), so a retry never overlaps writes in flight.
        results = await asyncio.gather(*(sender() for _ in range(min(self.concurrency, len(requests)))),
                                       return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed

    def _by_owner(self, statements: list, rows: pa.Table, spec: Table,
                  key_bytes: Callable[[tuple], bytes]) -> list[list]:
        """Statements in lists of ``batch_partitions``, each list's rows owned by one node (token-aware:
        the driver sends a batch to the node owning its first statement's partition)."""
        if self._ring.single:
            groups = [statements]
        else:
            by_node: dict[str, list] = {}
            keys = zip(*(rows[k].to_pylist() for k in spec.key))  # as cassandra-driver serializes them
            for statement, key in zip(statements, keys):
                by_node.setdefault(self._ring.owner(key_bytes(key)), []).append(statement)
            groups = list(by_node.values())
        return [group[start:start + self.batch_partitions]
                for group in groups for start in range(0, len(group), self.batch_partitions)]

    def reset(self) -> None:
        """A failed write drops the session: the next attempt connects anew (and rereads the ring)."""
        self._close_session()
        self._prepared.clear()

    def close(self) -> None:
        self.reset()
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def _close_session(self) -> None:
        if self._session is not None and self._loop is not None:
            try:
                self._loop.run_until_complete(self._session.close())
            except Exception:  # noqa: BLE001 - a session that broke may not close cleanly; it is dropped anyway
                pass
        self._session = self._ring = None


def _serializer(spark_type: str) -> Callable[[object], bytes]:
    """cassandra-driver's serializer of a key column's values."""
    serialize = cqltypes.lookup_casstype(SERIALIZERS[CassandraStore().column_type(spark_type)]).serialize
    return lambda value: serialize(value, PROTOCOL)


def _bindable(column: pa.ChunkedArray) -> list:
    """A column as the Python values the client binds. A timestamp goes as seconds (acsylla takes a
    float of seconds and cuts it to milliseconds toward zero): each millisecond half a millisecond
    away from zero, so the cut lands on it exactly, before 1970 too. A decimal goes as its
    serialized bytes (the statement reads it with ``blobAsDecimal``)."""
    if pa.types.is_timestamp(column.type):
        ms = pc.cast(column.cast(pa.timestamp("ms", column.type.tz), safe=False), pa.int64())
        away = pc.multiply(pc.cast(pc.sign(ms), pa.float64()), 0.5)
        return pc.divide(pc.add(pc.cast(ms, pa.float64()), away), 1000.0).to_pylist()
    if pa.types.is_decimal(column.type):
        serialize = cqltypes.DecimalType.serialize
        return [None if v is None else serialize(v, PROTOCOL) for v in column.to_pylist()]
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

