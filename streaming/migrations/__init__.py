"""Versioned migrations of the sink tables: ``<store>/V<NNN>__<what>.sql`` applied once, in order.

Each store records what it applied in ``<namespace>.schema_migrations`` (namespace = PostgreSQL
schema, ClickHouse database, Cassandra keyspace). ``python -m streaming.migrations [namespace]``
applies what is missing; jobs do it at start-up.
"""
from __future__ import annotations

import re
from pathlib import Path

from settings import Settings

HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _files(store: str) -> list[tuple[str, str]]:
    return [(p.name.split("__", 1)[0], p.read_text()) for p in sorted((HERE / store).glob("V*__*.*"))]


def statements(text: str, namespace: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.format(namespace=namespace).split(";") if s.strip()]


def _apply(store: str, namespace: str, done: set[str], execute, record) -> list[str]:
    """Run each migration of ``store`` not in ``done``, statement by statement, recording each."""
    applied_now = []
    for version, text in _files(store):
        if version in done:
            continue
        for statement in statements(text, namespace):
            execute(statement)
        record(version)
        applied_now.append(version)
    return applied_now


def _check(namespace: str) -> None:
    if not _NAME.match(namespace):
        raise ValueError(f"namespace {namespace!r} must be a lower-case SQL identifier")


def postgres(settings: Settings, namespace: str) -> list[str]:
    import psycopg2

    _check(namespace)
    conn = psycopg2.connect(settings.postgres.dsn())
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrations:{namespace}",))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {namespace}.schema_migrations "
                        "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
            cur.execute(f"SELECT version FROM {namespace}.schema_migrations")
            done = {r[0] for r in cur.fetchall()}
            return _apply("postgres", namespace, done, cur.execute, lambda version: cur.execute(
                f"INSERT INTO {namespace}.schema_migrations (version) VALUES (%s)", (version,)))
    finally:
        conn.close()


def clickhouse(settings: Settings, namespace: str) -> list[str]:
    import clickhouse_connect

    _check(namespace)
    ch = settings.clickhouse
    client = clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password,
                                           secure=ch.secure)
    client.command(f"CREATE DATABASE IF NOT EXISTS {namespace}")
    client.command(f"CREATE TABLE IF NOT EXISTS {namespace}.schema_migrations (version String, "
                   "applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version")
    done = {r[0] for r in client.query(f"SELECT version FROM {namespace}.schema_migrations FINAL").result_rows}
    return _apply("clickhouse", namespace, done, client.command, lambda version: client.insert(
        f"{namespace}.schema_migrations", [[version]], column_names=["version"]))


def cassandra(settings: Settings, namespace: str, replication: str | None = None) -> list[str]:
    from streaming.sinks.cassandra import connect

    _check(namespace)
    cluster, session = connect(settings)
    try:
        replication = replication or "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {namespace} WITH replication = {replication}")
        session.execute(f"CREATE TABLE IF NOT EXISTS {namespace}.schema_migrations "
                        "(version text PRIMARY KEY, applied_at timestamp)")
        done = {r.version for r in session.execute(f"SELECT version FROM {namespace}.schema_migrations")}
        return _apply("cassandra", namespace, done, session.execute, lambda version: session.execute(
            f"INSERT INTO {namespace}.schema_migrations (version, applied_at) VALUES (%s, toTimestamp(now()))",
            (version,)))
    finally:
        cluster.shutdown()


def migrate_all(settings: Settings, namespace: str) -> dict[str, list[str]]:
    return {"postgres": postgres(settings, namespace), "clickhouse": clickhouse(settings, namespace),
            "cassandra": cassandra(settings, namespace)}

