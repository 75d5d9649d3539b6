"""Cassandra: prepared upserts and deletes with ``USING TIMESTAMP = _version``, bounded concurrency.

Cassandra resolves conflicting writes by their timestamps, so writing with the source position
as the timestamp makes the newest change win whatever the order of arrival, and a replayed batch
rewrites identical cells: idempotent without a read.

Statements travel in UNLOGGED batches of ``batch_size`` (one request instead of fifty: about ten
times the rows per second from one Python process). They are not atomic and need not be: every
statement carries its own timestamp, so a batch retried after a failure changes nothing twice.
On a large cluster, where batches spanning partitions load the coordinator, use a smaller size.
"""
from __future__ import annotations

import pyarrow as pa
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.concurrent import execute_concurrent
from cassandra.policies import DCAwareRoundRobinPolicy
from cassandra.query import BatchStatement, BatchType

from settings import Settings
from streaming.tables import Table


def connect(settings: Settings):
    c = settings.cassandra
    auth = None
    if c.username:
        from cassandra.auth import PlainTextAuthProvider

        auth = PlainTextAuthProvider(c.username, c.password)
    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(c.local_dc), request_timeout=30)
    cluster = Cluster(c.hosts, port=c.port, auth_provider=auth, protocol_version=5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    return cluster, cluster.connect()


class CassandraSink:
    name = "cassandra"

    def __init__(self, settings: Settings, namespace: str, concurrency: int = 16, batch_size: int = 50) -> None:
        self.namespace = namespace
        self.concurrency = concurrency
        self.batch_size = batch_size
        self._cluster, self._session = connect(settings)
        self._prepared: dict[str, tuple] = {}

    def _statements(self, spec: Table):
        if spec.name not in self._prepared:
            columns = [f'"{c}"' for c in spec.all_columns]  # quoted: CQL names may not start with _
            upsert = self._session.prepare(
                f"INSERT INTO {self.namespace}.{spec.name} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)}) USING TIMESTAMP ?")
            delete = self._session.prepare(
                f"DELETE FROM {self.namespace}.{spec.name} USING TIMESTAMP ? "
                "WHERE " + " AND ".join(f'"{k}" = ?' for k in spec.key))
            self._prepared[spec.name] = (upsert, delete)
        return self._prepared[spec.name]

    def write(self, table: pa.Table, batch_id: int, spec: Table) -> None:
        upsert, delete = self._statements(spec)
        columns = spec.all_columns
        # Column by column into Python values, timestamps as integer milliseconds (Cassandra's
        # precision, which the driver takes without building datetime objects).
        values = [_as_python(table[c]) for c in columns]
        version, deleted = columns.index("_version"), columns.index("_deleted")
        keys = [columns.index(k) for k in spec.key]
        statements = []
        for row in zip(*values):
            if row[deleted]:
                statements.append((delete, (row[version], *(row[i] for i in keys))))
            else:
                statements.append((upsert, (*row, row[version])))
        batches = []
        for start in range(0, len(statements), self.batch_size):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for statement, params in statements[start:start + self.batch_size]:
                batch.add(statement, params)
            batches.append((batch, ()))
        for ok, result in execute_concurrent(self._session, batches, concurrency=self.concurrency,
                                             raise_on_first_error=True):
            if not ok:
                raise result

    def close(self) -> None:
        self._cluster.shutdown()


def _as_python(column: pa.ChunkedArray) -> list:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("ms", column.type.tz), safe=False).cast(pa.int64())
    return column.to_pylist()
