"""PostgreSQL change data capture through logical replication (pgoutput), published in Debezium's envelope.

On first start the connector creates its publication and replication slot, reads every table
in the snapshot the slot exported (op ``r``), then streams the slot. A restart resumes from the
slot's confirmed LSN, which only moves to the end of a transaction after Kafka acknowledged every
event of it, so nothing is lost and a re-sent change carries the same ``event_id``. A crash during
the snapshot restarts it on a new slot.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import select
import time
from dataclasses import dataclass, field

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql

from connectors import metrics
from connectors.cdc import envelope, pgoutput, types
from connectors.checkpoints import CheckpointStore
from connectors.producer import EventProducer
from connectors.records import event_id, namespace_for
from connectors.runtime import ConnectorConfig, StopFlag
from kappa.settings import Settings
from kappa.errors import Refused, Unavailable, first_line

log = logging.getLogger(__name__)

SESSION_OPTIONS = "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c IntervalStyle=iso_8601"


class CdcConfig(ConnectorConfig):
    # Tables to capture, "schema.table"; the connector's role must own them (to publish them).
    tables: list[str]
    # Topics are "<topic_prefix>.<table>".
    topic_prefix: str
    database: str | None = None       # default: the settings' PostgreSQL database
    slot: str | None = None           # default: "kappa_<name>"
    publication: str | None = None    # default: "kappa_<name>"
    snapshot: str = "initial"         # "initial": read the tables first; "never": stream only
    partitions: int = 3
    heartbeat_interval_s: float = 10.0
    # Optional statement run on every heartbeat, e.g. an UPDATE of a heartbeat table, so WAL of
    # this database moves (and the slot with it) even when only other databases are written.
    heartbeat_query: str | None = None
    max_pending_events: int = 200_000
    # The columns that identify a row of a table with no primary key ("schema.table" -> columns),
    # like Debezium's message.key.columns: its Kafka key and its serving tables' key. A table with
    # a primary key may name other columns here too.
    keys: dict[str, list[str]] = {}
    # Tables captured insert-only: only INSERTs are published (a second publication WITH
    # (publish = 'insert')), so PostgreSQL needs no replica identity for their UPDATEs and DELETEs.
    insert_only: list[str] = []
    # A lost or refused PostgreSQL connection is retried this many times in a row (waiting
    # 0.5 s, doubling up to 30 s; each one counted in kappa_connector_source_errors_total), then the
    # process exits 1 naming the server. The slot keeps every change meanwhile.
    reconnect_attempts: int = 8

    def slot_name(self) -> str:
        return self.slot or f"kappa_{self.name}".replace("-", "_")

    def publication_name(self) -> str:
        return self.publication or f"kappa_{self.name}".replace("-", "_")

    def publications(self) -> dict[str, tuple[list[str], str | None]]:
        """Publication name -> (its tables, its publish option): all changes, and inserts only."""
        changes = [t for t in self.tables if t not in self.insert_only]
        inserts = [t for t in self.tables if t in self.insert_only]
        return {self.publication_name(): (changes, None), f"{self.publication_name()}_inserts": (inserts, "insert")}


@dataclass(frozen=True)
class TableIdentity:
    """What the catalog says identifies a table's rows."""

    replica_identity: str             # d(efault), n(othing), f(ull), i(ndex)
    primary_key: list[str] | None
    identity_index: list[str] | None  # the REPLICA IDENTITY USING INDEX index's columns
    columns: list[str]
    not_null: list[str]


def table_identity(cur, qualified: str) -> TableIdentity | None:
    """The catalog's view of ``schema.table`` (None if it does not exist)."""
    schema, table = qualified.split(".", 1)
    index_columns = """(SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
                         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                        WHERE i.indrelid = c.oid AND i.{})"""
    cur.execute(
        f"""SELECT c.relreplident, {index_columns.format('indisprimary')}, {index_columns.format('indisreplident')},
                   array(SELECT attname::text FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0
                         AND NOT attisdropped ORDER BY attnum),
                   array(SELECT attname::text FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0
                         AND NOT attisdropped AND attnotnull ORDER BY attnum)
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = %s AND c.relname = %s""",
        (schema, table),
    )
    row = cur.fetchone()
    return None if row is None else TableIdentity(*row)


class BadValue(Refused, ValueError):
    """A column value with no form in the table's Avro schema (e.g. NaN in a numeric(p, s))."""


class SourceUnavailable(Unavailable, ConnectionError):
    """PostgreSQL did not accept the connection (the process exits 1 naming it; its supervisor restarts it)."""


class TableNotCapturable(Refused):
    """A table the connector cannot publish as configured; the message names the table and the fix."""


@dataclass
class TableState:
    relation: pgoutput.Relation
    topic: str
    value: object                     # AvroSerializer of the envelope
    key: object | None                # AvroSerializer of the key, None without a primary key
    parsers: list = field(default_factory=list)
    key_index: list[int] = field(default_factory=list)
    # Full name of the row record: naming the union branch spares fastavro validating every row.
    row_type: str = ""


class CdcConnector:
    def __init__(self, config: CdcConfig, settings: Settings, stop: StopFlag | None = None) -> None:
        self.config = config
        self.settings = settings
        self.stop = stop or StopFlag()
        self.database = config.database or settings.postgres.dbname
        self.dsn = settings.postgres.dsn(self.database)
        self.producer = EventProducer(settings, config.name)
        self.checkpoints = CheckpointStore(settings, config.name)
        self.tables: dict[int, TableState] = {}
        self._by_name: dict[tuple[str, str], TableState] = {}
        self.keys: dict[str, tuple[str, ...]] = {}   # "schema.table" -> its key columns
        self._sql: psycopg2.extensions.connection | None = None
        self._lag = metrics.LAG.labels(config.name, "wal_bytes")
        self._lag_seconds = metrics.LAG.labels(config.name, "seconds")
        self._last_event_time = metrics.LAST_EVENT_TIME.labels(config.name)
        self._newest_event_ms = 0     # event_time of the newest event produced
        self._failures = 0            # connection failures in a row
        metrics.SOURCE_ERRORS.labels(config.name, "connection")  # at 0 from the start: increase() sees the first

    # -- set-up --------------------------------------------------------------------------------
    def _connect(self, **kwargs) -> psycopg2.extensions.connection:
        try:
            return psycopg2.connect(self.dsn, options=SESSION_OPTIONS,
                                    application_name=f"kappa-cdc-{self.config.name}", **kwargs)
        except psycopg2.OperationalError as exc:
            postgres = self.settings.postgres
            raise SourceUnavailable(f"PostgreSQL at {postgres.host}:{postgres.port} (database {self.database}) "
                                    f"refused the connection: {first_line(exc)}; check it runs "
                                    "and KAPPA_POSTGRES__HOST/PORT/USER") from exc

    def _ensure_publications(self) -> list[str]:
        """Create or update the publications; returns those that have tables (the ones to stream)."""
        streamed = []
        with self._sql.cursor() as cur:
            for publication, (tables, publish) in self.config.publications().items():
                cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
                exists = cur.fetchone() is not None
                if not tables:
                    if exists:
                        cur.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(publication)))
                    continue
                names = sql.SQL(", ").join(sql.SQL(".").join(map(sql.Identifier, t.split(".", 1))) for t in tables)
                if exists:
                    cur.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(publication), names))
                    if publish:
                        cur.execute(sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(
                            sql.Identifier(publication), sql.Literal(publish)))
                else:
                    cur.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}{}").format(
                        sql.Identifier(publication), names,
                        sql.SQL(" WITH (publish = {})").format(sql.Literal(publish)) if publish else sql.SQL("")))
                streamed.append(publication)
        return streamed

    def _resolve_key(self, qualified: str) -> tuple[str, ...]:
        """The key columns of a table; refuses, naming the fix, a table whose changes cannot be captured.

        Without a primary key or replica identity PostgreSQL refuses every UPDATE and DELETE of a
        published table, so such a table is never published as is: it needs a key, REPLICA
        IDENTITY FULL and a declared key, or insert-only capture with a declared key.
        """
        with self._sql.cursor() as cur:
            found = table_identity(cur, qualified)
        if found is None:
            raise TableNotCapturable(f"table {qualified} (config 'tables') does not exist in database {self.database}")
        identity, primary, identity_index, columns = (found.replica_identity, found.primary_key,
                                                      found.identity_index, found.columns)
        declared = self.config.keys.get(qualified)
        if declared:
            missing = [c for c in declared if c not in columns]
            if missing:
                raise TableNotCapturable(f"table {qualified}: key columns {missing} (config 'keys') are not columns "
                                         f"of the table; it has {columns}")
        key = tuple(declared or primary or (identity_index if identity == "i" else None) or ())
        insert_only = qualified in self.config.insert_only
        if insert_only and not key:
            raise TableNotCapturable(f"table {qualified} is captured insert-only (config 'insert_only') but has no "
                                     f"key: declare one, e.g. keys = {{ \"{qualified}\" = [\"id\"] }}")
        has_identity = identity == "f" or (identity == "d" and primary) or (identity == "i" and identity_index)
        if not insert_only and not has_identity:
            raise TableNotCapturable(
                f"table {qualified} has no replica identity (no primary key, REPLICA IDENTITY "
                f"{ {'d': 'DEFAULT', 'n': 'NOTHING', 'i': 'USING INDEX', 'f': 'FULL'}[identity]}): once published, "
                f"PostgreSQL would refuse its UPDATEs and DELETEs. Fix one of: ALTER TABLE {qualified} ADD PRIMARY "
                f"KEY (...); or ALTER TABLE {qualified} REPLICA IDENTITY FULL and declare its key in 'keys'; or "
                f"capture it insert-only: insert_only = [\"{qualified}\"] with its key in 'keys'")
        if not key:
            raise TableNotCapturable(
                f"table {qualified} has REPLICA IDENTITY FULL but no primary key: its events would have no Kafka "
                f"key. Declare the columns that identify a row: keys = {{ \"{qualified}\" = [...] }}")
        return key

    def _catalog_relation(self, qualified: str) -> tuple[pgoutput.Relation, dict[str, str], set[str]]:
        """The table's columns as pgoutput would describe them, with comments and NOT NULL flags."""
        schema, table = qualified.split(".", 1)
        with self._sql.cursor() as cur:
            cur.execute(
                """SELECT c.oid, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
                          col_description(c.oid, a.attnum), c.relreplident
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    WHERE n.nspname = %s AND c.relname = %s ORDER BY a.attnum""",
                (schema, table),
            )
            rows = cur.fetchall()
        if not rows:
            raise TableNotCapturable(f"table {qualified} (config 'tables') does not exist in database {self.database}")
        columns = tuple(pgoutput.Column(r[1], r[2], r[3], False) for r in rows)
        relation = pgoutput.Relation(rows[0][0], schema, table, rows[0][6], columns)
        return relation, {r[1]: r[5] for r in rows if r[5]}, {r[1] for r in rows if r[4]}

    def _with_key(self, relation: pgoutput.Relation) -> pgoutput.Relation:
        """``relation`` with the resolved key marked (pgoutput marks every column of a FULL identity)."""
        key = self.keys[f"{relation.schema}.{relation.table}"]
        columns = tuple(dataclasses.replace(c, is_key=c.name in key) for c in relation.columns)
        return dataclasses.replace(relation, columns=columns)

    def _register(self, relation: pgoutput.Relation) -> TableState:
        """Schemas and serializers for a table (again after an ALTER TABLE changed its columns)."""
        relation = self._with_key(relation)
        _, comments, not_null = self._catalog_relation(f"{relation.schema}.{relation.table}")
        topic = f"{self.config.topic_prefix}.{relation.table}"
        namespace = namespace_for(topic)
        value = self.producer.serializer(topic, envelope.value_schema(namespace, relation, comments, not_null))
        key_schema = envelope.key_schema(namespace, relation)
        key = self.producer.serializer(topic, key_schema, is_key=True) if key_schema else None
        state = TableState(relation, topic, value, key,
                           parsers=[types.parser(c.type_oid, c.type_modifier) for c in relation.columns],
                           key_index=[i for i, c in enumerate(relation.columns) if c.is_key],
                           row_type=f"{namespace}.Value")
        self.tables[relation.oid] = state
        self._by_name[(relation.schema, relation.table)] = state
        return state

    # -- events ----------------------------------------------------------------------------------
    def _row(self, state: TableState, values: list) -> dict:
        row = {}
        for column, parse, text in zip(state.relation.columns, state.parsers, values, strict=True):
            if text is None or text is pgoutput.UNCHANGED:
                row[column.name] = None
                continue
            try:
                row[column.name] = parse(text)
            except ValueError as exc:
                raise BadValue(f"column {column.name} ({types.type_name(column.type_oid)}) of "
                               f"{state.relation.schema}.{state.relation.table}: {exc}") from None
        return row

    def _key(self, state: TableState, row: dict) -> bytes | None:
        if state.key is None:
            return None
        return state.key({state.relation.columns[i].name: row[state.relation.columns[i].name] for i in state.key_index})

    def _emit(self, state: TableState, op: str, before: dict | None, after: dict | None, *, lsn: int,
              txid: int | None, ts_ms: int, snapshot: str, event_id: str) -> None:
        key = self._key(state, after if after is not None else before)
        value = state.value({
            "before": None if before is None else (state.row_type, before),
            "after": None if after is None else (state.row_type, after),
            "op": op,
            "source": {"connector": self.config.name, "db": self.database, "schema": state.relation.schema,
                       "table": state.relation.table, "lsn": lsn, "txId": txid, "ts_ms": ts_ms, "snapshot": snapshot},
            "ts_ms": int(time.time() * 1000), "event_id": event_id, "event_time": ts_ms,
        })
        self._newest_event_ms = max(self._newest_event_ms, ts_ms)
        self.producer.send(state.topic, key, value)
        if op == "d" and key is not None:
            self.producer.send(state.topic, key, None)  # tombstone: log compaction forgets the row

    # -- snapshot --------------------------------------------------------------------------------
    def _snapshot(self, snapshot_name: str, lsn: int) -> None:
        started_ms = int(time.time() * 1000)
        conn = self._connect()
        conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        count = 0
        try:
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_name,))
            for index, qualified in enumerate(self.config.tables):
                schema, table = qualified.split(".", 1)
                state = self._by_name[(schema, table)]
                columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in state.relation.columns)
                with conn.cursor(name=f"snapshot_{index}") as cur:
                    _as_output_text(cur, state.relation)
                    cur.itersize = 10_000
                    cur.execute(sql.SQL("SELECT {} FROM {}.{}").format(columns, sql.Identifier(schema), sql.Identifier(table)))
                    previous = None
                    for values in cur:
                        if previous is not None:
                            count += self._snapshot_row(state, previous, lsn, started_ms, "true")
                        previous = values
                    if previous is not None:
                        last = "last" if index == len(self.config.tables) - 1 else "true"
                        count += self._snapshot_row(state, previous, lsn, started_ms, last)
                self.producer.poll()
            conn.commit()
        finally:
            conn.close()
        self._acknowledged()
        log.info("snapshot done", extra={"events": count, "lsn": pgoutput.lsn_to_str(lsn)})

    def _snapshot_row(self, state: TableState, values, lsn: int, ts_ms: int, marker: str) -> int:
        # Same table, same row content => same id, so a snapshot redone after a crash re-sends, not duplicates.
        self.stop.health.beat()  # a long snapshot asks no stop question between rows
        position = (f"pg:{self.database}:{state.relation.schema}.{state.relation.table}:r:"
                    + "\x1f".join("\x00" if v is None else v for v in values))
        try:
            row = self._row(state, list(values))
        except BadValue as bad:
            self.producer.dead_letter(state.topic, json.dumps(list(values)), str(bad), f"snapshot at LSN "
                                      f"{pgoutput.lsn_to_str(lsn)}")
            return 0
        self._emit(state, "r", None, row, lsn=lsn, txid=None, ts_ms=ts_ms, snapshot=marker, event_id=event_id(position))
        return 1

    # -- streaming -------------------------------------------------------------------------------
    def run(self) -> None:
        """Stream until stopped. A lost connection resumes from the slot's confirmed position, as a
        restart would (changes produced but not confirmed are re-sent with the same event ids)."""
        try:
            while not self.stop.is_set():
                try:
                    self._session()
                    return
                except (SourceUnavailable, psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    self._failures += 1
                    failures = self._failures
                    metrics.SOURCE_ERRORS.labels(self.config.name, "connection").inc()
                    postgres = self.settings.postgres
                    if failures > self.config.reconnect_attempts:
                        raise SourceUnavailable(f"PostgreSQL at {postgres.host}:{postgres.port} failed "
                                                f"{failures} times in a row: {first_line(exc)}") from exc
                    delay = min(30.0, 0.5 * 2 ** (failures - 1))
                    log.warning("PostgreSQL connection lost: reconnecting", extra={
                        "error": first_line(exc), "attempt": failures, "retry_in_s": delay,
                        "postgres": f"{postgres.host}:{postgres.port}"})
                    self.stop.health.not_ready(f"reconnecting to PostgreSQL (attempt {failures})")
                    self.stop.wait(delay)
        finally:
            self.producer.close()

    def _session(self) -> None:
        """One connection's life: catalog and publications, the slot (and its snapshot), the stream."""
        self._sql = self._connect()
        repl = None
        try:
            self._sql.autocommit = True
            self.keys = {qualified: self._resolve_key(qualified) for qualified in self.config.tables}  # before publishing
            publications = self._ensure_publications()
            for qualified in self.config.tables:
                self._register(self._catalog_relation(qualified)[0])
            self.producer.ensure_topics(sorted({s.topic for s in self.tables.values()}), self.config.partitions)
            repl = self._connect(connection_factory=psycopg2.extras.LogicalReplicationConnection)
            cur = repl.cursor()
            self._prepare_slot(cur)
            if self.stop.is_set():
                return
            cur.start_replication(slot_name=self.config.slot_name(), decode=False, status_interval=10,
                                  options={"proto_version": "1", "publication_names": ",".join(publications)})
            self.stop.health.ready()  # streaming the slot (a snapshot, if any, is done)
            self._failures = 0
            self._stream(cur)
        finally:
            for conn in (repl, self._sql):
                if conn is not None and not conn.closed:
                    conn.close()

    def _prepare_slot(self, cur) -> None:
        slot = self.config.slot_name()
        with self._sql.cursor() as check:
            check.execute("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            existing = check.fetchone()
        snapshot_done = self.checkpoints.get("snapshot", {}).get("done", False)
        wants_snapshot = self.config.snapshot == "initial"
        if existing and (snapshot_done or not wants_snapshot):
            log.info("resuming slot", extra={"slot": slot, "confirmed_flush_lsn": existing[0]})
            return
        if existing:
            log.warning("snapshot of slot %s never finished: dropping the slot and snapshotting again", slot)
            with self._sql.cursor() as drop:
                drop.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        cur.execute(f'CREATE_REPLICATION_SLOT "{slot}" LOGICAL pgoutput'
                    + ("" if wants_snapshot else " NOEXPORT_SNAPSHOT"))
        _name, consistent_point, snapshot_name, _plugin = cur.fetchone()
        lsn = pgoutput.str_to_lsn(consistent_point)
        log.info("created slot", extra={"slot": slot, "consistent_point": consistent_point})
        if wants_snapshot:
            self._snapshot(snapshot_name, lsn)
        self.checkpoints.save("snapshot", {"done": True, "slot": slot, "lsn": consistent_point})

    def _stream(self, cur) -> None:
        begin: pgoutput.Begin | None = None
        confirmed = committed = 0      # LSNs: acknowledged to PostgreSQL / end of the last produced transaction
        pending = 0                    # events produced since the last checkpoint
        commit_ts_ms = 0               # commit time of the last produced transaction
        last_commit_time = last_message = time.monotonic()
        next_heartbeat = last_message + self.config.heartbeat_interval_s
        ordinal_lsn, ordinal = 0, 0
        while not self.stop.is_set():
            msg = cur.read_message()
            now = time.monotonic()
            if msg is None:
                # Caught up with the server: the events are on their way (linger.ms); confirm them at
                # the commit interval, as when busy. Confirming at every catch-up flushed the producer
                # once a transaction, each event in a produce request of its own: at 1K transactions/s
                # that cost 0.25 ms of CPU an event and bought no latency (the flush is not the send).
                self.producer.poll()
                if pending and begin is None and now - last_commit_time >= self.config.commit_interval_s:
                    confirmed = self._confirm(cur, committed, pending, commit_ts_ms)
                    pending, last_commit_time = 0, now
                if now >= next_heartbeat:
                    confirmed = self._heartbeat(cur, begin is None and pending == 0, committed, confirmed)
                    next_heartbeat = now + self.config.heartbeat_interval_s
                timeout = max(0.0, min(next_heartbeat - now, self.config.commit_interval_s))
                select.select([cur], [], [], timeout)
                continue
            last_message = now
            event = pgoutput.decode(msg.payload)
            if isinstance(event, pgoutput.Begin):
                begin = event
            elif isinstance(event, pgoutput.Commit):
                begin, committed, commit_ts_ms = None, event.end_lsn, event.commit_ts_ms
                if pending >= self.config.max_pending_events or now - last_commit_time >= self.config.commit_interval_s:
                    confirmed = self._confirm(cur, committed, pending, commit_ts_ms)
                    pending, last_commit_time = 0, now
            elif isinstance(event, pgoutput.Relation):
                known = self.tables.get(event.oid)
                if known is None or _shape(known.relation) != _shape(event):
                    self._register(event)
            elif event is not None:
                if msg.data_start != ordinal_lsn:
                    ordinal_lsn, ordinal = msg.data_start, 0
                pending += self._change(event, begin, msg.data_start, ordinal)
                ordinal += 1
                if pending % 1000 == 0:
                    self.producer.poll()
        if pending and begin is None:
            self._confirm(cur, committed, pending, commit_ts_ms)
        log.info("stopped", extra={"confirmed_lsn": pgoutput.lsn_to_str(confirmed)})

    def _change(self, event, begin: pgoutput.Begin, lsn: int, ordinal: int) -> int:
        """Publish one change; a change with a value Avro cannot carry goes to the table's DLQ instead."""
        try:
            return self._publish_change(event, begin, lsn, ordinal)
        except BadValue as bad:
            state = self.tables[event.relation_oid]
            images = {name: getattr(event, name, None) for name in ("old", "new")}
            self.producer.dead_letter(state.topic, json.dumps(images, default=str), str(bad),
                                      f"LSN {pgoutput.lsn_to_str(lsn)} #{ordinal}")
            return 0

    def _publish_change(self, event, begin: pgoutput.Begin, lsn: int, ordinal: int) -> int:
        if isinstance(event, pgoutput.Truncate):
            names = [f"{self.tables[o].relation.schema}.{self.tables[o].relation.table}" for o in event.relation_oids
                     if o in self.tables]
            log.warning("TRUNCATE is not published as events", extra={"tables": names, "lsn": pgoutput.lsn_to_str(lsn)})
            return 0
        state = self.tables[event.relation_oid]
        base = f"pg:{self.database}:{lsn:X}:{ordinal}"
        common = {"lsn": lsn, "txid": begin.xid if begin else None, "ts_ms": begin.commit_ts_ms if begin else 0,
                  "snapshot": "false"}
        if isinstance(event, pgoutput.Insert):
            self._emit(state, "c", None, self._row(state, event.new), event_id=event_id(base), **common)
            return 1
        if isinstance(event, pgoutput.Delete):
            self._emit(state, "d", self._row(state, event.old), None, event_id=event_id(base), **common)
            return 2 if state.key is not None else 1
        after = self._row(state, event.new)
        before = self._row(state, event.old) if event.old is not None else None
        if before is not None and any(before[state.relation.columns[i].name] != after[state.relation.columns[i].name]
                                      for i in state.key_index):
            # The primary key changed: the old row is gone (delete + tombstone), a new row exists.
            self._emit(state, "d", before, None, event_id=event_id(base + ":d"), **common)
            self._emit(state, "c", None, after, event_id=event_id(base + ":c"), **common)
            return 3
        self._emit(state, "u", None if event.old_is_key_only else before, after,
                   event_id=event_id(base), **common)
        return 1

    def _confirm(self, cur, lsn: int, pending: int, commit_ts_ms: int) -> int:
        """Wait for Kafka to acknowledge everything, then let PostgreSQL release the WAL up to ``lsn``
        (committed at ``commit_ts_ms``): the slot's lag is then what the server wrote after it."""
        started = time.perf_counter()
        self._acknowledged()
        if lsn:
            cur.send_feedback(flush_lsn=lsn, force=True)
            self._lag.set(max(0, cur.wal_end - lsn))
            self._lag_seconds.set(max(0.0, time.time() - commit_ts_ms / 1000) if commit_ts_ms else 0.0)
        metrics.CHECKPOINTS.labels(self.config.name).inc()
        metrics.BATCH_SECONDS.labels(self.config.name).observe(time.perf_counter() - started)
        log.debug("confirmed", extra={"lsn": pgoutput.lsn_to_str(lsn), "events": pending})
        return lsn

    def _acknowledged(self) -> None:
        """Wait for Kafka to acknowledge everything produced; the newest event is then published."""
        self.producer.checkpoint()
        if self._newest_event_ms:
            self._last_event_time.set(self._newest_event_ms / 1000)

    def _heartbeat(self, cur, idle: bool, committed: int, confirmed: int) -> int:
        """Keep an idle slot from pinning WAL: with nothing in flight, confirm up to the server's WAL end."""
        if self.config.heartbeat_query:
            with self._sql.cursor() as hb:
                hb.execute(self.config.heartbeat_query)
        if idle:
            target = max(committed, cur.wal_end)
            if target > confirmed:
                self.producer.checkpoint()
                cur.send_feedback(flush_lsn=target, force=True)
                confirmed = target
            if confirmed >= cur.wal_end:  # nothing of the server's WAL waits for this connector
                self._lag.set(0)
                self._lag_seconds.set(0)
        return confirmed


def _as_output_text(cur, relation: pgoutput.Relation) -> None:
    """Make ``cur`` return every column as the text of its type's output function, as pgoutput sends it.

    A ``::text`` cast is not that text for every type (``char(n)`` loses its padding), so the
    snapshot reads the values as they are and keeps psycopg2 from converting them.
    """
    oids = tuple({c.type_oid for c in relation.columns})
    psycopg2.extensions.register_type(psycopg2.extensions.new_type(oids, "KAPPA_OUTPUT_TEXT", _text), cur)


def _text(value: str | None, _cur) -> str | None:
    return value


def _shape(relation: pgoutput.Relation) -> list[tuple[str, int, int]]:
    """A relation's columns as they decide its schema (names, types), not pgoutput's key flags."""
    return [(c.name, c.type_oid, c.type_modifier) for c in relation.columns]
