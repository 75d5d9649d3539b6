"""Cassandra's Python clients writing the same rows the same way, for bench/streaming.py's raw writes.

    python bench/cassandra_clients.py [--rows N]    (needs `make up`)

``sink``: the Cassandra sink itself (acsylla, on the C++ driver). ``cassandra-driver`` and
``scyllapy`` (Rust): each writes the same Arrow rows as the sink does: prepared upserts with
``USING TIMESTAMP``, in unlogged batches of 10 rows of one replica (a single node here: any 10),
with ``concurrency`` requests in flight, from two processes (the machine's cores). Reported per
client: rows/s, and CPU milliseconds per 1K rows of the client processes (the conversion of the
Arrow rows to the client's values included) and of Cassandra's server.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402

from bench.cpu import cpu_seconds, cpu_used  # noqa: E402

CLIENTS = ("sink", "cassandra-driver", "scyllapy")
CHUNK = 50_000  # rows per call, as a partition of a large batch


def _insert(namespace: str, table) -> str:
    columns = ", ".join(f'"{c}"' for c in table.all_columns)
    markers = ", ".join("?" for _ in table.all_columns)
    return f"INSERT INTO {namespace}.{table.name} ({columns}) VALUES ({markers}) USING TIMESTAMP ?"


def _with_driver(settings, namespace: str, table, chunks: list[pa.Table], concurrency: int) -> None:
    """cassandra-driver: bound statements in BatchStatements, ``execute_concurrent``."""
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import BatchStatement, BatchType

    from streaming.stores.cassandra import connect

    cluster, session = connect(settings)
    insert = session.prepare(_insert(namespace, table))
    version = table.all_columns.index("_version")
    for rows in chunks:
        values = []
        for column in table.all_columns:  # timestamps as integer milliseconds, which it takes as they are
            data = rows[column]
            if pa.types.is_timestamp(data.type):
                data = data.cast(pa.timestamp("ms", data.type.tz), safe=False).cast(pa.int64())
            values.append(data.to_pylist())
        bound = [insert.bind((*row, row[version])) for row in zip(*values)]
        batches = []
        for start in range(0, len(bound), 10):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for statement in bound[start:start + 10]:
                batch.add(statement)
            batches.append((batch, None))
        for ok, result in execute_concurrent(session, batches, concurrency=concurrency, raise_on_first_error=True):
            if not ok:
                raise result
    cluster.shutdown()


def _with_scyllapy(settings, namespace: str, table, chunks: list[pa.Table], concurrency: int) -> None:
    """scyllapy: it types a value by its Python type, not by the prepared statement's metadata, so a
    bigint, a double or a timestamp is wrapped (or a datetime) value by value."""
    from scyllapy import Batch, BatchType, Scylla
    from scyllapy.extra_types import BigInt, Double, SmallInt, TinyInt

    from streaming.stores.cassandra import CassandraStore

    wrap = {"bigint": BigInt, "double": Double, "smallint": SmallInt, "tinyint": TinyInt}
    store = CassandraStore()
    types = {c: store.column_type(t) for c, t in table.columns} | {"_version": "bigint", "_deleted": "boolean"}

    async def run() -> None:
        c = settings.cassandra
        scylla = Scylla([f"{h}:{c.port}" for h in c.hosts], username=c.username, password=c.password)
        await scylla.startup()
        insert = await scylla.prepare(_insert(namespace, table))
        for rows in chunks:
            values = []
            for column in table.all_columns:
                data = rows[column].to_pylist()  # timestamps as datetimes
                kind = wrap.get(types[column])
                values.append([None if v is None else kind(v) for v in data] if kind else data)
            version = values[table.all_columns.index("_version")]
            rows_values = [(*row, stamp) for row, stamp in zip(zip(*values), version)]
            pending = iter(range(0, len(rows_values), 10))

            async def sender() -> None:
                for start in pending:
                    group = rows_values[start:start + 10]
                    batch = Batch(BatchType.UNLOGGED)
                    for _ in group:
                        batch.add_query(insert)
                    await scylla.batch(batch, group)

            await asyncio.gather(*(sender() for _ in range(concurrency)))
        await scylla.shutdown()

    asyncio.run(run())


def _with_sink(settings, namespace: str, table, chunks: list[pa.Table], concurrency: int) -> None:
    from streaming.stores.base import WriteToken
    from streaming.stores.cassandra import CassandraSink

    sink = CassandraSink(settings, namespace, concurrency=concurrency)
    for number, rows in enumerate(chunks):
        sink.write(rows, table, WriteToken("raw", 1, number))
    sink.close()


WRITERS = {"sink": _with_sink, "cassandra-driver": _with_driver, "scyllapy": _with_scyllapy}


def _one_process(client: str, namespace: str, rows: pa.Table, table, concurrency: int) -> tuple[float, float]:
    """One process's share: (wall seconds, its CPU seconds), after a first small write (connect, prepare)."""
    from kappa.settings import get_settings

    settings = get_settings()
    WRITERS[client](settings, namespace, table, [rows.slice(0, 100)], concurrency)
    cpu, started = time.process_time(), time.perf_counter()
    WRITERS[client](settings, namespace, table, [rows.slice(o, CHUNK) for o in range(0, rows.num_rows, CHUNK)],
                    concurrency)
    return time.perf_counter() - started, time.process_time() - cpu


def write(client: str, rows: pa.Table, table, concurrency: int = 48) -> dict:
    """``rows`` written by ``client`` from two processes into a new keyspace: rows/s and CPU ms per 1K rows."""
    from kappa.settings import get_settings
    from streaming import stores

    namespace = f"bench_raw_{uuid.uuid4().hex[:8]}"
    stores.get("cassandra").ensure_table(get_settings(), namespace, table, "bench")
    half = rows.num_rows // 2
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(time.sleep, [0.5, 0.5]))  # both processes started (spawned on demand) before the clock
        before = cpu_seconds()
        started = time.perf_counter()
        shares = list(pool.map(_one_process, [client] * 2, [namespace] * 2, [rows.slice(0, half), rows.slice(half)],
                               [table] * 2, [concurrency] * 2))
        elapsed = time.perf_counter() - started
        used = cpu_used(before)
        if "cassandra" not in used:
            raise RuntimeError("no Cassandra server process found: run `make up`")
    per_1k = 1000_000 / rows.num_rows  # seconds per row -> milliseconds per 1K rows
    return {"rows_per_s": round(rows.num_rows / elapsed), "client_cpu_ms_per_1k": round(sum(c for _, c in shares) * per_1k, 1),
            "server_cpu_ms_per_1k": round(used["cassandra"] * per_1k, 1), "machine_busy_s": used["machine_busy"]}


def compare(rows: pa.Table, table, concurrency: int = 48) -> dict[str, dict]:
    """Every client on the same rows, one after another."""
    return {client: write(client, rows, table, concurrency) for client in CLIENTS}


def print_table(results: dict[str, dict]) -> None:
    print(f"{'Cassandra client':<18} {'rows/s':>9} {'client CPU ms/1K':>17} {'server CPU ms/1K':>17}")
    for client, r in results.items():
        name = "sink (acsylla)" if client == "sink" else client
        print(f"{name:<18} {r['rows_per_s']:>9,} {r['client_cpu_ms_per_1k']:>17} {r['server_cpu_ms_per_1k']:>17}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=48)
    args = parser.parse_args()
    from bench.streaming import _orders_rows
    from streaming.tables import Table

    rows = _orders_rows(args.rows)
    spark_types = {pa.int64(): "bigint", pa.string(): "string", pa.float64(): "double", pa.bool_(): "boolean",
                   pa.timestamp("us", "UTC"): "timestamp"}
    table = Table("orders", ("order_id",), tuple((f.name, spark_types[f.type]) for f in rows.schema
                                                  if f.name not in ("_version", "_deleted")))
    print_table(compare(rows, table, args.concurrency))
