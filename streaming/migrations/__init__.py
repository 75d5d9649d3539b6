"""A pipeline's hand-written migrations, for what its derived serving table cannot express.

A pipeline file may name a folder (``migrations = "..."``, relative to the file) holding
``<store>/V<NNN>__<what>.sql`` (``.cql`` for Cassandra); ``{namespace}`` in them is the pipeline's
namespace. They run once each, in order, at the job's start, in that pipeline's namespace only, and
each store records them in ``<namespace>.pipeline_migrations`` by (pipeline, version): every
pipeline has its own version sequence, so two pipelines' ``V001`` never collide, and a namespace
holds only the tables of the pipelines that run in it. The orders pipeline's hourly features
(``streaming/pipelines/migrations/orders/``) are one.

``kappa migrate <pipeline>.toml [--namespace NS]`` applies them without a job.
"""
from __future__ import annotations

import re
from pathlib import Path

from kappa.settings import Settings

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def files(folder: Path, store: str) -> list[tuple[str, str]]:
    """(version, text) of a store's migrations in ``folder``, in version order."""
    return [(p.name.split("__", 1)[0], p.read_text()) for p in sorted((folder / store).glob("V*__*.*"))]


def statements(text: str, namespace: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.format(namespace=namespace).split(";") if s.strip()]


def _apply(folder: Path, store: str, namespace: str, done: set[str], execute, record) -> list[str]:
    """Run each migration of ``store`` not in ``done``, statement by statement, recording each."""
    applied_now = []
    for version, text in files(folder, store):
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


def postgres(settings: Settings, namespace: str, pipeline: str, folder: Path) -> list[str]:
    import psycopg2

    _check(namespace)
    conn = psycopg2.connect(settings.postgres.dsn())
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrations:{namespace}",))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {namespace}.pipeline_migrations (pipeline text, version text, "
                        "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, version))")
            cur.execute(f"SELECT version FROM {namespace}.pipeline_migrations WHERE pipeline = %s", (pipeline,))
            done = {r[0] for r in cur.fetchall()}
            return _apply(folder, "postgres", namespace, done, cur.execute, lambda version: cur.execute(
                f"INSERT INTO {namespace}.pipeline_migrations (pipeline, version) VALUES (%s, %s)", (pipeline, version)))
    finally:
        conn.close()


def clickhouse(settings: Settings, namespace: str, pipeline: str, folder: Path) -> list[str]:
    from streaming.sinks.clickhouse import client as clickhouse_client

    _check(namespace)
    client = clickhouse_client(settings)
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS {namespace}")
        client.command(f"CREATE TABLE IF NOT EXISTS {namespace}.pipeline_migrations (pipeline String, version String, "
                       "applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY (pipeline, version)")
        done = {r[0] for r in client.query(f"SELECT version FROM {namespace}.pipeline_migrations FINAL "
                                           "WHERE pipeline = {p:String}", parameters={"p": pipeline}).result_rows}
        return _apply(folder, "clickhouse", namespace, done, client.command, lambda version: client.insert(
            f"{namespace}.pipeline_migrations", [[pipeline, version]], column_names=["pipeline", "version"]))
    finally:
        client.close()


def cassandra(settings: Settings, namespace: str, pipeline: str, folder: Path, replication: str | None = None) -> list[str]:
    from streaming.sinks.cassandra import connect

    _check(namespace)
    cluster, session = connect(settings)
    try:
        replication = replication or "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        session.execute(f"CREATE KEYSPACE IF NOT EXISTS {namespace} WITH replication = {replication}")
        session.execute(f"CREATE TABLE IF NOT EXISTS {namespace}.pipeline_migrations "
                        "(pipeline text, version text, applied_at timestamp, PRIMARY KEY (pipeline, version))")
        done = {r.version for r in session.execute(
            f"SELECT version FROM {namespace}.pipeline_migrations WHERE pipeline = %s", (pipeline,))}
        return _apply(folder, "cassandra", namespace, done, session.execute, lambda version: session.execute(
            f"INSERT INTO {namespace}.pipeline_migrations (pipeline, version, applied_at) "
            "VALUES (%s, %s, toTimestamp(now()))", (pipeline, version)))
    finally:
        cluster.shutdown()


APPLY = {"postgres": postgres, "clickhouse": clickhouse, "cassandra": cassandra}
