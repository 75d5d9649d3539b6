"""Cassandra: prepared upserts and deletes with ``USING TIMESTAMP = _version``, sent concurrently.

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
"""
from __future__ import annotations

import pyarrow as pa
from cassandra import OperationTimedOut, Timeout, Unavailable
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from kappa.settings import Settings
from streaming.sinks.base import Sink, WriteToken
from streaming.tables import Table


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
