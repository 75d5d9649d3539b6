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

import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from kappa.errors import Refused
from kappa.settings import Settings
from streaming import locks, stores
from streaming.stores.base import RECORD
from streaming.stores.postgres import connect, quoted

log = logging.getLogger(__name__)


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
        return self.own_namespace if self.number > 1 else self.namespace

    @property
    def own_namespace(self) -> str:
        """The version's own namespace: where it was built, or (version 1) where a store that serves
        through views moves its tables at the first cut-over."""
        return version_namespace(self.namespace, self.pipeline, self.number)


def version_namespace(namespace: str, pipeline: str, number: int) -> str:
    """Version ``number``'s namespace: a name every store takes (letters, digits, underscores)."""
    return f"{namespace}__{re.sub(r'[^0-9a-zA-Z_]', '_', pipeline).lower()}_v{number}"


def job_name(pipeline: str, number: int) -> str:
    """The query name of version ``number``'s live job: its own checkpoint, tokens and metrics."""
    return pipeline if number == 1 else f"{pipeline}__v{number}"


def _pg(settings: Settings):
    return connect(settings, "kappa-versions")


def _ensure_record(cur, namespace: str) -> None:
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(namespace)}")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {quoted(namespace)}.{RECORD} (pipeline text NOT NULL, version int NOT NULL, "
                "state text NOT NULL CHECK (state IN ('shadow', 'active', 'previous', 'dropped')), "
                "locations jsonb NOT NULL, resume_offsets text, created_at timestamptz NOT NULL DEFAULT now(), "
                "activated_at timestamptz, PRIMARY KEY (pipeline, version))")


def _rows(cur, namespace: str, pipeline: str) -> list[Version]:
    cur.execute("SELECT to_regclass(%s)", (f'{quoted(namespace)}.{RECORD}',))
    if cur.fetchone()[0] is None:
        return []
    cur.execute(f"SELECT version, state, locations, created_at, activated_at, resume_offsets FROM {quoted(namespace)}.{RECORD} "
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
                            dict.fromkeys(stores.names(), version_namespace(namespace, pipeline, chosen)))


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
                cur.execute(f"INSERT INTO {quoted(namespace)}.{RECORD} (pipeline, version, state, locations, activated_at) "
                            "VALUES (%s, 1, 'active', %s, now())", (pipeline, json.dumps(dict.fromkeys(stores.names(), namespace))))
                versions = _rows(cur, namespace, pipeline)
            number = _choose(versions, pipeline, number)
            if number not in {v.number for v in versions}:
                home = version_namespace(namespace, pipeline, number)
                cur.execute(f"INSERT INTO {quoted(namespace)}.{RECORD} (pipeline, version, state, locations) "
                            "VALUES (%s, %s, 'shadow', %s)", (pipeline, number, json.dumps(dict.fromkeys(stores.names(), home))))
            return next(v for v in _rows(cur, namespace, pipeline) if v.number == number)
    finally:
        conn.close()


def record_end(settings: Settings, version: Version, offsets: dict[str, dict[str, int]]) -> None:
    """Remember where a shadow replay ended (``{topic: {partition: next offset}}``): a live job of the
    version starts there, so events after the replayed range are written once, by it."""
    conn = _pg(settings)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT resume_offsets FROM {quoted(version.namespace)}.{RECORD} WHERE pipeline = %s AND "
                        "version = %s FOR UPDATE", (version.pipeline, version.number))
            before = json.loads(cur.fetchone()[0] or "{}")
            for topic, ends in offsets.items():
                known = before.setdefault(topic, {})
                for partition, end in ends.items():
                    known[partition] = max(int(known.get(partition, -1)), int(end))
            cur.execute(f"UPDATE {quoted(version.namespace)}.{RECORD} SET resume_offsets = %s WHERE pipeline = %s AND "
                        "version = %s", (json.dumps(before), version.pipeline, version.number))
    finally:
        conn.close()


# --- cut-over ------------------------------------------------------------------------------------

def cut_over(settings: Settings, namespace: str, pipeline: str, number: int) -> list[str]:
    """Point the serving names of ``pipeline`` at version ``number``; what was switched, per store.

    Each store switches in turn (:meth:`~streaming.stores.base.Store.cut_over`), PostgreSQL last
    with the record in the same transaction: the record says a version is active only once every
    store shows it, and a cut-over that failed half-way is finished by running it again. Call it
    under :func:`hold`.
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
    switched = []
    for name in stores.names():  # the stores the version was recorded with (a store added since has none)
        if name != "postgres" and name in target.locations:
            switched += stores.get(name).cut_over(settings, namespace, target, current)

    def record(cur) -> None:
        # Version 1's tables, in a store that serves through views, moved into its own namespace.
        locations = {name: current.own_namespace if where == namespace and name in stores.REGISTRY
                     and stores.get(name).moves_first_version else where
                     for name, where in current.locations.items()}
        cur.execute(f"UPDATE {quoted(namespace)}.{RECORD} SET state = 'previous', locations = %s WHERE pipeline = %s "
                    "AND version = %s", (json.dumps(locations), current.pipeline, current.number))
        cur.execute(f"UPDATE {quoted(namespace)}.{RECORD} SET state = 'active', activated_at = now() WHERE "
                    "pipeline = %s AND version = %s", (target.pipeline, target.number))

    switched += stores.get("postgres").cut_over(settings, namespace, target, current, record=record)
    log.info("pipeline %s in %s: version %d is active (was %d): %s", pipeline, namespace, number, current.number,
             ", ".join(switched))
    return switched


def refresh(settings: Settings, store: str, serving: ServingVersion, home: str, table: str) -> None:
    """Re-make the serving view of ``table`` after its version gained columns (a view's ``*`` is
    expanded when it is made), if that version is the active one."""
    if home == serving.namespace:
        return
    current = active(settings, serving.namespace, serving.pipeline)
    if current is None or current.number != serving.number:
        return
    stores.get(store).refresh(settings, serving.namespace, home, table)


# --- dropping what readers left ------------------------------------------------------------------

def drop_previous(settings: Settings, namespace: str, pipeline: str) -> list[str]:
    """Drop the tables of every ``previous`` version; what was dropped. Call it under :func:`hold`."""
    versions = listing(settings, namespace, pipeline)
    current = next((v for v in versions if v.state == "active"), None)
    dropped = []
    for version in (v for v in versions if v.state == "previous"):
        for name in (n for n in stores.names() if n in version.locations):
            dropped += stores.get(name).drop(settings, namespace, version)
        conn = _pg(settings)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"UPDATE {quoted(namespace)}.{RECORD} SET state = 'dropped' WHERE pipeline = %s AND "
                            "version = %s", (pipeline, version.number))
        finally:
            conn.close()
    if current is None or not dropped:
        log.info("pipeline %s in %s: no previous version to drop", pipeline, namespace)
    return dropped
