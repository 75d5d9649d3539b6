"""Serving versions: a pipeline's tables rebuilt beside the ones readers use, then switched at once.

A shadow rebuild (``kappa backfill --mode shadow``) writes version N of a pipeline's tables into a
namespace of their own, ``<namespace>__<pipeline>_v<N>``, in every store, with the same DDL and
sinks as any namespace. Readers keep using ``<namespace>.<table>``; the cut-over points those names
at version N, store by store, each switch atomic for that store's readers:

- PostgreSQL: the serving names are views over the version's tables and views; all of a
  pipeline's are dropped and re-created in one transaction (a reader waits for it and then sees
  the new version, never a mix or a missing table);
- ClickHouse: a view over the version's table is swapped in with ``EXCHANGE TABLES`` (atomic per
  table). ClickHouse ignores ``FINAL`` on a view, so the view reads its table with ``FINAL``:
  readers see merged rows, as ``FINAL`` on the table gives;
- Cassandra has no views and cannot rename a table: the pointer table
  ``<namespace>.serving_versions`` names each table's keyspace; readers look it up (and cache it);
- the lake (Delta) is read by path: the pointer object ``<namespace>/_serving/<table>.json`` in the
  lake bucket names each table's path.

A namespace without versions is its own version 1. At its first cut-over its PostgreSQL and
ClickHouse tables move into ``<namespace>__<pipeline>_v1`` (in the same transaction, with the
same exchange), which frees the serving names; its Cassandra tables and lake paths stay where they
are, as the pointers say.

The record is PostgreSQL's ``<namespace>.serving_versions``: each version, its state (``shadow``:
being built or built; ``active``: what readers see; ``previous``: kept for a cut-back until
``drop_previous``; ``dropped``) and where its tables are in each store. A session-level advisory lock
(:func:`hold`) lets one rebuild, cut-over or drop of a pipeline run at a time; the server releases
it when the process holding it ends, so a crashed rebuild never blocks the next.
"""
from __future__ import annotations

import io
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from kappa.settings import Settings
from streaming import locks
from kappa.errors import Refused

log = logging.getLogger(__name__)
RECORD = "serving_versions"
STORES = ("postgres", "clickhouse", "cassandra", "lake")
OWN = {"pipeline_migrations", RECORD}   # a namespace's bookkeeping, not serving tables


class ServingVersion(BaseModel):
    """What a job writes, when it writes a version: readers' namespace, the pipeline, the number."""

    pipeline: str      # the pipeline's own name (the record's key), not the query's
    namespace: str     # the serving names' namespace; references are read there too
    number: int


class VersionRefused(Refused, ValueError):
    """A rebuild, cut-over or drop that cannot run as asked; the message says what to do."""


@dataclass(frozen=True)
class Version:
    pipeline: str
    namespace: str               # the serving namespace
    number: int
    state: str                   # shadow | active | previous | dropped
    locations: dict[str, str]    # store -> the namespace (keyspace, database, lake prefix) of its tables
    created_at: datetime | None = None
    activated_at: datetime | None = None
    resume_offsets: str | None = None  # where a live job of this version starts: the shadow replay's end

    @property
    def home(self) -> str:
        """The namespace the version was built in (version 1: the serving namespace itself)."""
        return version_namespace(self.namespace, self.pipeline, self.number) if self.number > 1 else self.namespace


def version_namespace(namespace: str, pipeline: str, number: int) -> str:
    """Version ``number``'s namespace: a name every store takes (letters, digits, underscores)."""
    return f"{namespace}__{re.sub(r'[^0-9a-zA-Z_]', '_', pipeline).lower()}_v{number}"


def job_name(pipeline: str, number: int) -> str:
    """The query name of version ``number``'s live job: its own checkpoint, tokens and metrics."""
    return pipeline if number == 1 else f"{pipeline}__v{number}"


def _pg(settings: Settings, purpose: str = "kappa-versions"):
    import psycopg2

    return psycopg2.connect(settings.postgres.dsn(), application_name=purpose[:63], connect_timeout=10)


def _q(name: str, quote: str = '"') -> str:
    return f"{quote}{name}{quote}"


def _ensure_record(cur, namespace: str) -> None:
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(namespace)}")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {_q(namespace)}.{RECORD} (pipeline text NOT NULL, version int NOT NULL, "
                "state text NOT NULL CHECK (state IN ('shadow', 'active', 'previous', 'dropped')), "
                "locations jsonb NOT NULL, resume_offsets text, created_at timestamptz NOT NULL DEFAULT now(), "
                "activated_at timestamptz, PRIMARY KEY (pipeline, version))")


def _rows(cur, namespace: str, pipeline: str) -> list[Version]:
    cur.execute("SELECT to_regclass(%s)", (f'{_q(namespace)}.{RECORD}',))
    if cur.fetchone()[0] is None:
        return []
    cur.execute(f"SELECT version, state, locations, created_at, activated_at, resume_offsets FROM {_q(namespace)}.{RECORD} "
                "WHERE pipeline = %s ORDER BY version", (pipeline,))
    return [Version(pipeline, namespace, n, state, dict(locations), created, activated, resume)
            for n, state, locations, created, activated, resume in cur.fetchall()]


def listing(settings: Settings, namespace: str, pipeline: str) -> list[Version]:
    """Every version of ``pipeline`` in ``namespace`` (empty: it never had a rebuild)."""
    conn = _pg(settings)
    try:
        with conn, conn.cursor() as cur:
            return _rows(cur, namespace, pipeline)
    finally:
        conn.close()


def active(settings: Settings, namespace: str, pipeline: str) -> Version | None:
    """The version readers see; None when the pipeline never had a rebuild (its namespace is version 1)."""
    return next((v for v in listing(settings, namespace, pipeline) if v.state == "active"), None)


@contextmanager
def hold(settings: Settings, namespace: str, pipeline: str, doing: str):
    """Hold the pipeline's rebuild lock for the ``with`` block, or refuse at once with who holds it."""
    refusal = (f"a shadow rebuild, cut-over or drop of pipeline {pipeline} in {namespace} is running ({{holder}}): "
               "wait for it to finish, or stop that process; one runs at a time")
    try:
        with locks.hold(settings, locks.VERSIONS, f"{namespace}.{pipeline}", f"kappa {doing} {namespace}.{pipeline}",
                        refusal) as conn:
            yield conn
    except locks.LockHeld as exc:
        raise VersionRefused(str(exc)) from None


def _choose(versions: list[Version], pipeline: str, number: int | None) -> int:
    """The version a shadow rebuild writes (see :func:`shadow`)."""
    by_number = {v.number: v for v in versions} or {1: None}
    if number is None:
        shadows = [v for v in versions if v.state == "shadow"]
        return shadows[-1].number if shadows else max(by_number) + 1
    if number in by_number and (by_number[number] is None or by_number[number].state != "shadow"):
        state = by_number[number].state if by_number[number] else "active"
        raise VersionRefused(f"version {number} of pipeline {pipeline} is {state}: a shadow rebuild writes a version "
                             "not yet cut over; leave out --version for a new one")
    if number not in by_number and number != max(by_number) + 1:
        raise VersionRefused(f"pipeline {pipeline} has versions {sorted(by_number)}: the next one is {max(by_number) + 1}")
    return number


def planned(settings: Settings, namespace: str, pipeline: str, number: int | None = None) -> Version:
    """The version :func:`shadow` would write, recording nothing (for a dry run)."""
    versions = listing(settings, namespace, pipeline)
    chosen = _choose(versions, pipeline, number)
    known = next((v for v in versions if v.number == chosen), None)
    return known or Version(pipeline, namespace, chosen, "shadow",
                            dict.fromkeys(STORES, version_namespace(namespace, pipeline, chosen)))


def shadow(settings: Settings, namespace: str, pipeline: str, number: int | None = None) -> Version:
    """The version a shadow rebuild writes: ``number``, else the newest one not yet cut over, else a new one.

    Writing an unfinished shadow again is what makes a rerun of the same range change nothing.
    Call it under :func:`hold`."""
    conn = _pg(settings)
    try:
        with conn, conn.cursor() as cur:
            _ensure_record(cur, namespace)
            versions = _rows(cur, namespace, pipeline)
            if not versions:  # the namespace as it is: version 1, what readers see today
                cur.execute(f"INSERT INTO {_q(namespace)}.{RECORD} (pipeline, version, state, locations, activated_at) "
                            "VALUES (%s, 1, 'active', %s, now())", (pipeline, json.dumps(dict.fromkeys(STORES, namespace))))
                versions = _rows(cur, namespace, pipeline)
            number = _choose(versions, pipeline, number)
            if number not in {v.number for v in versions}:
                home = version_namespace(namespace, pipeline, number)
                cur.execute(f"INSERT INTO {_q(namespace)}.{RECORD} (pipeline, version, state, locations) "
                            "VALUES (%s, %s, 'shadow', %s)", (pipeline, number, json.dumps(dict.fromkeys(STORES, home))))
            return next(v for v in _rows(cur, namespace, pipeline) if v.number == number)
    finally:
        conn.close()


def record_end(settings: Settings, version: Version, offsets: dict[str, dict[str, int]]) -> None:
    """Remember where a shadow replay ended (``{topic: {partition: next offset}}``): a live job of the
    version starts there, so events after the replayed range are written once, by it."""
    conn = _pg(settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT resume_offsets FROM {_q(version.namespace)}.{RECORD} WHERE pipeline = %s AND "
                        "version = %s FOR UPDATE", (version.pipeline, version.number))
            before = json.loads(cur.fetchone()[0] or "{}")
            for topic, ends in offsets.items():
                known = before.setdefault(topic, {})
                for partition, end in ends.items():
                    known[partition] = max(int(known.get(partition, -1)), int(end))
            cur.execute(f"UPDATE {_q(version.namespace)}.{RECORD} SET resume_offsets = %s WHERE pipeline = %s AND "
                        "version = %s", (json.dumps(before), version.pipeline, version.number))
    finally:
        conn.close()


# --- what a version holds, per store ------------------------------------------------------------

def _postgres_relations(cur, schema: str) -> list[tuple[str, str]]:
    """(name, kind) of a schema's tables then views, without the namespace's bookkeeping."""
    cur.execute("SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v') ORDER BY c.relkind <> 'v' DESC, c.relname",
                (schema,))
    return [(name, kind) for name, kind in cur.fetchall() if name not in OWN]


def _clickhouse_tables(client, database: str) -> dict[str, str]:
    rows = client.query("SELECT name, engine FROM system.tables WHERE database = {db:String}",
                        parameters={"db": database}).result_rows
    return {name: engine for name, engine in rows if name not in OWN}


def _cassandra_tables(session, keyspace: str) -> list[str]:
    rows = session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    return sorted(r.table_name for r in rows if r.table_name not in OWN)


def _minio(settings: Settings):
    from streaming.sinks import lake

    return lake.client(settings)


def _lake_tables(settings: Settings, prefix: str) -> list[str]:
    """The Delta tables directly under ``prefix`` (a namespace): folders with a ``_delta_log``."""
    client = _minio(settings)
    bucket = settings.s3.lake_bucket
    found = []
    for entry in client.list_objects(bucket, prefix=f"{prefix}/"):
        name = entry.object_name[len(prefix) + 1:].strip("/")
        if entry.is_dir and not name.startswith("_") and \
                any(True for _ in client.list_objects(bucket, prefix=f"{prefix}/{name}/_delta_log/")):
            found.append(name)
    return sorted(found)


# --- cut-over ------------------------------------------------------------------------------------

def cut_over(settings: Settings, namespace: str, pipeline: str, number: int) -> list[str]:
    """Point the serving names of ``pipeline`` at version ``number``; what was switched, per store.

    Cassandra's and the lake's pointers, then ClickHouse's views, then PostgreSQL's views with the
    record in one transaction: the record says a version is active only once every store shows it,
    and a cut-over that failed half-way is finished by running it again. Call it under :func:`hold`.
    """
    versions = {v.number: v for v in listing(settings, namespace, pipeline)}
    target = versions.get(number)
    if target is None:
        raise VersionRefused(f"pipeline {pipeline} in {namespace} has no version {number} (it has "
                             f"{sorted(versions) or 'none: build one with --mode shadow'})")
    if target.state == "dropped":
        raise VersionRefused(f"version {number} of pipeline {pipeline} was dropped: rebuild it with --mode shadow")
    current = next(v for v in versions.values() if v.state == "active")
    if current.number == number:
        raise VersionRefused(f"version {number} of pipeline {pipeline} is already the active one")
    switched = [*_cut_over_cassandra(settings, namespace, target), *_cut_over_lake(settings, namespace, target),
                *_cut_over_clickhouse(settings, namespace, target, current),
                *_cut_over_postgres(settings, namespace, target, current)]
    log.info("pipeline %s in %s: version %d is active (was %d): %s", pipeline, namespace, number, current.number,
             ", ".join(switched))
    return switched


def _cut_over_cassandra(settings: Settings, namespace: str, target: Version) -> list[str]:
    from streaming.sinks.cassandra import connect

    cluster, session = connect(settings)
    try:
        tables = _cassandra_tables(session, target.locations["cassandra"])
        if not tables:
            return []
        session.execute(f'CREATE KEYSPACE IF NOT EXISTS "{namespace}" WITH replication = '
                        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f'CREATE TABLE IF NOT EXISTS "{namespace}".{RECORD} (table_name text PRIMARY KEY, '
                        "keyspace_name text, pipeline text, version int, activated_at timestamp)")
        insert = session.prepare(f'INSERT INTO "{namespace}".{RECORD} (table_name, keyspace_name, pipeline, version, '
                                 "activated_at) VALUES (?, ?, ?, ?, toTimestamp(now()))")
        for table in tables:
            session.execute(insert, (table, target.locations["cassandra"], target.pipeline, target.number))
        return [f"cassandra {namespace}.{RECORD}[{t}] -> {target.locations['cassandra']}.{t}" for t in tables]
    finally:
        cluster.shutdown()


def _cut_over_lake(settings: Settings, namespace: str, target: Version) -> list[str]:
    from streaming.sinks import lake

    client, bucket = _minio(settings), settings.s3.lake_bucket
    switched = []
    for table in _lake_tables(settings, target.locations["lake"]):
        body = json.dumps({"pipeline": target.pipeline, "version": target.number,
                           "path": lake.path(settings, target.locations["lake"], table)}).encode()
        client.put_object(bucket, pointer(namespace, table), io.BytesIO(body), len(body),
                          content_type="application/json")  # one PUT: readers see the old or the new object
        switched.append(f"lake {pointer(namespace, table)} -> {target.locations['lake']}/{table}")
    return switched


def pointer(namespace: str, table: str) -> str:
    """The lake bucket's object that names the path of ``table``'s active version."""
    return f"{namespace}/_serving/{table}.json"


def _cut_over_clickhouse(settings: Settings, namespace: str, target: Version, current: Version) -> list[str]:
    from streaming.sinks.clickhouse import client as clickhouse_client

    client = clickhouse_client(settings)
    try:
        home = target.locations["clickhouse"]
        tables = _clickhouse_tables(client, home)
        serving = _clickhouse_tables(client, namespace)
        moved_to = version_namespace(namespace, current.pipeline, current.number)
        for table, engine_of_version in tables.items():
            view = _clickhouse_view(home, table, engine_of_version)
            engine = serving.get(table)
            if engine is None:
                client.command(f"CREATE VIEW `{namespace}`.`{table}` AS {view}")
            elif engine != "View":  # version 1's own table: it moves out, the view takes its name
                client.command(f"CREATE DATABASE IF NOT EXISTS `{moved_to}`")
                client.command(f"CREATE VIEW `{moved_to}`.`{table}` AS {view}")
                client.command(f"EXCHANGE TABLES `{namespace}`.`{table}` AND `{moved_to}`.`{table}`")
            else:
                _swap_clickhouse_view(client, namespace, table, view)
        return [f"clickhouse {namespace}.{t} -> {home}.{t}" for t in tables]
    finally:
        client.close()


def _clickhouse_view(home: str, table: str, engine: str) -> str:
    """The serving view's query. ClickHouse ignores ``FINAL`` on a view, so the view applies it
    where the engine merges rows (Replacing-, Summing-, ...MergeTree): readers see merged rows."""
    plain = engine.replace("Replicated", "").replace("Shared", "") == "MergeTree" or not engine.endswith("MergeTree")
    return f"SELECT * FROM `{home}`.`{table}`" + ("" if plain else " FINAL")


def _swap_clickhouse_view(client, namespace: str, table: str, view: str) -> None:
    nxt = f"{table}__next"
    client.command(f"DROP TABLE IF EXISTS `{namespace}`.`{nxt}`")
    client.command(f"CREATE VIEW `{namespace}`.`{nxt}` AS {view}")
    client.command(f"EXCHANGE TABLES `{namespace}`.`{table}` AND `{namespace}`.`{nxt}`")
    client.command(f"DROP TABLE `{namespace}`.`{nxt}`")


def _cut_over_postgres(settings: Settings, namespace: str, target: Version, current: Version) -> list[str]:
    conn = _pg(settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '30s'")
            cur.execute(f"LOCK TABLE {_q(namespace)}.{RECORD} IN EXCLUSIVE MODE")
            home = target.locations["postgres"]
            relations = _postgres_relations(cur, home)
            serving = dict(_postgres_relations(cur, namespace))
            moved_to = version_namespace(namespace, current.pipeline, current.number)
            for name, _kind in reversed(relations):  # views first: a table's view goes before it
                kind = serving.get(name)
                if kind == "v" and current.locations["postgres"] != namespace:
                    cur.execute(f"DROP VIEW {_q(namespace)}.{_q(name)}")
            for name, _kind in relations:
                kind = serving.get(name)
                if kind is not None and current.locations["postgres"] == namespace:  # version 1's own: it moves out
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(moved_to)}")
                    what = "VIEW" if kind == "v" else "TABLE"
                    cur.execute(f"ALTER {what} {_q(namespace)}.{_q(name)} SET SCHEMA {_q(moved_to)}")
                cur.execute(f"CREATE VIEW {_q(namespace)}.{_q(name)} AS SELECT * FROM {_q(home)}.{_q(name)}")
            locations = dict(current.locations)
            if current.locations["postgres"] == namespace:  # version 1's PostgreSQL and ClickHouse tables moved
                locations.update(postgres=moved_to, clickhouse=moved_to)
            cur.execute(f"UPDATE {_q(namespace)}.{RECORD} SET state = 'previous', locations = %s WHERE pipeline = %s "
                        "AND version = %s", (json.dumps(locations), current.pipeline, current.number))
            cur.execute(f"UPDATE {_q(namespace)}.{RECORD} SET state = 'active', activated_at = now() WHERE "
                        "pipeline = %s AND version = %s", (target.pipeline, target.number))
            return [f"postgres {namespace}.{name} -> {home}.{name}" for name, _ in relations]
    finally:
        conn.close()


def refresh(settings: Settings, store: str, serving: ServingVersion, home: str, table: str) -> None:
    """Re-make the serving view of ``table`` after its version gained columns (a view's ``*`` is
    expanded when it is made), if that version is the active one."""
    if store not in ("postgres", "clickhouse") or home == serving.namespace:
        return
    current = active(settings, serving.namespace, serving.pipeline)
    if current is None or current.number != serving.number:
        return
    if store == "postgres":
        conn = _pg(settings)
        try:
            with conn, conn.cursor() as cur:
                for name in (table, f"{table}_current"):
                    cur.execute(f"CREATE OR REPLACE VIEW {_q(serving.namespace)}.{_q(name)} AS "
                                f"SELECT * FROM {_q(home)}.{_q(name)}")
        finally:
            conn.close()
    else:
        from streaming.sinks.clickhouse import client as clickhouse_client

        client = clickhouse_client(settings)
        try:
            engine = _clickhouse_tables(client, home)[table]
            _swap_clickhouse_view(client, serving.namespace, table, _clickhouse_view(home, table, engine))
        finally:
            client.close()


# --- dropping what readers left ------------------------------------------------------------------

def drop_previous(settings: Settings, namespace: str, pipeline: str) -> list[str]:
    """Drop the tables of every ``previous`` version; what was dropped. Call it under :func:`hold`."""
    versions = listing(settings, namespace, pipeline)
    current = next((v for v in versions if v.state == "active"), None)
    dropped = []
    for version in (v for v in versions if v.state == "previous"):
        dropped += _drop(settings, namespace, version)
        conn = _pg(settings)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"UPDATE {_q(namespace)}.{RECORD} SET state = 'dropped' WHERE pipeline = %s AND "
                            "version = %s", (pipeline, version.number))
        finally:
            conn.close()
    if current is None or not dropped:
        log.info("pipeline %s in %s: no previous version to drop", pipeline, namespace)
    return dropped


def _drop(settings: Settings, namespace: str, version: Version) -> list[str]:
    """A version's tables in every store. Where a version shares the serving namespace (version 1's
    Cassandra keyspace and lake prefix), only its own tables go: the other pipelines' and the raw
    archive stay."""
    from streaming.sinks.cassandra import connect
    from streaming.sinks.clickhouse import client as clickhouse_client

    loc, dropped = version.locations, []
    if loc["postgres"] != namespace:
        conn = _pg(settings)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {_q(loc['postgres'])} CASCADE")
        finally:
            conn.close()
        dropped.append(f"postgres schema {loc['postgres']}")
    if loc["clickhouse"] != namespace:
        client = clickhouse_client(settings)
        try:
            client.command(f"DROP DATABASE IF EXISTS `{loc['clickhouse']}`")
        finally:
            client.close()
        dropped.append(f"clickhouse database {loc['clickhouse']}")
    cluster, session = connect(settings)
    try:
        if loc["cassandra"] != namespace:
            session.execute(f'DROP KEYSPACE IF EXISTS "{loc["cassandra"]}"')
            dropped.append(f"cassandra keyspace {loc['cassandra']}")
        else:
            pointed = {r.table_name: r.keyspace_name for r in
                       session.execute(f'SELECT table_name, keyspace_name FROM "{namespace}".{RECORD}')}
            for table in (t for t, keyspace in pointed.items() if keyspace != namespace):
                session.execute(f'DROP TABLE IF EXISTS "{namespace}"."{table}"')
                dropped.append(f"cassandra table {namespace}.{table}")
    finally:
        cluster.shutdown()
    client, bucket = _minio(settings), settings.s3.lake_bucket
    if loc["lake"] != namespace:
        prefixes = [f"{loc['lake']}/"]
    else:
        prefixes = [f"{namespace}/{table}/" for table in _lake_pointed_elsewhere(settings, namespace)]
    for prefix in prefixes:
        from minio.deleteobjects import DeleteObject

        objects = [DeleteObject(o.object_name) for o in client.list_objects(bucket, prefix=prefix, recursive=True)]
        errors = list(client.remove_objects(bucket, objects))
        if errors:
            raise OSError(f"lake {prefix}: {len(errors)} objects not deleted, the first: {errors[0]}")
        dropped.append(f"lake s3://{bucket}/{prefix}")
    return dropped


def _lake_pointed_elsewhere(settings: Settings, namespace: str) -> list[str]:
    """The lake tables in ``namespace`` whose pointer names another namespace's path: version 1's."""
    client, bucket = _minio(settings), settings.s3.lake_bucket
    tables = []
    for entry in client.list_objects(bucket, prefix=f"{namespace}/_serving/"):
        response = client.get_object(bucket, entry.object_name)
        try:
            target = json.loads(response.read())
        finally:
            response.close()
            response.release_conn()
        if f"/{namespace}/" not in target["path"]:
            tables.append(entry.object_name.rsplit("/", 1)[-1].removesuffix(".json"))
    return tables
