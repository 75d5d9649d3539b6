"""Cassandra: prepared upserts and deletes with ``USING TIMESTAMP = _version``, bounded concurrency.

Cassandra resolves conflicting writes by their timestamps, so writing with the source position
as the timestamp makes the newest change win whatever the order of arrival, and a replayed batch
rewrites identical cells: idempotent without a read.
"""
from __future__ import annotations

import pyarrow as pa
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy

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

    def __init__(self, settings: Settings, namespace: str, concurrency: int = 64) -> None:
        self.namespace = namespace
        self.concurrency = concurrency
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
        rows = table.select(spec.all_columns).to_pylist()
        upserts = [(*(r[c] for c in spec.all_columns), r["_version"]) for r in rows if not r["_deleted"]]
        deletes = [(r["_version"], *(r[k] for k in spec.key)) for r in rows if r["_deleted"]]
        for statement, params in ((upsert, upserts), (delete, deletes)):
            if params:
                results = execute_concurrent_with_args(self._session, statement, params,
                                                       concurrency=self.concurrency, raise_on_first_error=True)
                for ok, result in results:
                    if not ok:
                        raise result

    def close(self) -> None:
        self._cluster.shutdown()
