"""The CDC connector on the real PostgreSQL and Kafka: snapshot, streaming, SIGKILL and restart."""
import collections
import random
import signal
import threading
import time
import urllib.request
from datetime import datetime, timezone

import psycopg2
import pytest

from tests.conftest import free_port
from tests.integration.kafka_topics import read_topic, wait_for


def slot_lsn(conn, slot: str) -> int | None:
    with conn.cursor() as cur:
        cur.execute("SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else None


@pytest.fixture
def cdc_table(postgres_settings, unique):
    conn = psycopg2.connect(postgres_settings.dsn())
    conn.autocommit = True
    table = f"cdc_orders_{unique}"
    with conn.cursor() as cur:
        cur.execute(f"""CREATE TABLE public.{table} (
                          id bigint PRIMARY KEY,
                          status text NOT NULL,
                          amount numeric(12, 2),
                          note text,
                          updated_at timestamptz NOT NULL DEFAULT '2026-11-26 00:00:00+00')""")
        cur.execute(f"COMMENT ON COLUMN public.{table}.status IS 'Order status'")
        cur.execute(f"INSERT INTO public.{table} (id, status, amount) SELECT g, 'NEW', g * 1.5 FROM generate_series(1, 500) g")
    yield conn, table
    name = f"it-{unique}"
    with conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active", (f"kappa_{name}".replace("-", "_"),))
        cur.execute(f"DROP PUBLICATION IF EXISTS kappa_{name.replace('-', '_')}")
        cur.execute(f"DROP TABLE public.{table}")
    conn.close()


def workload(dsn: str, table: str, expected: list, done: threading.Event) -> None:
    """Inserts, updates, primary-key changes and deletes, one small transaction each, over a few seconds."""
    rng = random.Random(7)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    live = set(range(1, 501))
    next_id = 1000
    try:
        with conn.cursor() as cur:
            for step in range(900):
                kind = rng.choices(["insert", "update", "rekey", "delete"], weights=[4, 4, 1, 2])[0]
                if kind == "insert" or not live:
                    cur.execute(f"INSERT INTO public.{table} (id, status, amount, note) VALUES (%s, 'NEW', %s, %s)",
                                (next_id, step, f"n{step}"))
                    expected.append(("c", next_id))
                    live.add(next_id)
                    next_id += 1
                elif kind == "update":
                    key = rng.choice(sorted(live))
                    cur.execute(f"UPDATE public.{table} SET status = 'PAID', note = %s WHERE id = %s", (f"u{step}", key))
                    expected.append(("u", key))
                elif kind == "rekey":
                    key = rng.choice(sorted(live))
                    cur.execute(f"UPDATE public.{table} SET id = %s WHERE id = %s", (key + 100_000, key))
                    expected += [("d", key), ("c", key + 100_000)]
                    live.discard(key)
                    live.add(key + 100_000)
                else:
                    key = rng.choice(sorted(live))
                    cur.execute(f"DELETE FROM public.{table} WHERE id = %s", (key,))
                    expected.append(("d", key))
                    live.discard(key)
                time.sleep(0.006)
    finally:
        conn.close()
        done.set()


def test_snapshot_stream_sigkill_restart_loses_nothing(cdc_table, postgres_settings, kafka_bootstrap,
                                                        registry_url, run_connector, unique):
    conn, table = cdc_table
    name = f"it-{unique}"
    slot = f"kappa_{name}".replace("-", "_")
    topic = f"it.cdc{unique}.{table}"
    config = {"name": name, "tables": [f"public.{table}"], "topic_prefix": f"it.cdc{unique}",
              "commit_interval_s": 0.3, "heartbeat_interval_s": 1.0}

    first = run_connector("cdc", config)
    snapshot = wait_for(lambda: [r for r in read_topic(kafka_bootstrap, registry_url, topic)
                                 if r["value"] and r["value"]["op"] == "r"] if slot_lsn(conn, slot) else None,
                        90, "the snapshot")
    wait_for(lambda: len([r for r in read_topic(kafka_bootstrap, registry_url, topic)
                          if r["value"] and r["value"]["op"] == "r"]) >= 500, 60, "500 snapshot rows")
    start_lsn = slot_lsn(conn, slot)

    expected: list = []
    done = threading.Event()
    writer = threading.Thread(target=workload, args=(postgres_settings.dsn(), table, expected, done))
    writer.start()
    time.sleep(2.0)
    first.send_signal(signal.SIGKILL)  # midway: some changes published, some not, some unconfirmed
    first.wait(10)
    killed_at = len(expected)
    time.sleep(0.5)
    second = run_connector("cdc", config)
    writer.join(60)
    assert done.is_set() and 0 < killed_at < len(expected)

    def all_published():
        records = read_topic(kafka_bootstrap, registry_url, topic)
        ids = {r["value"]["event_id"] for r in records if r["value"] and r["value"]["op"] != "r"}
        return records if len(ids) >= len(expected) else None

    records = wait_for(all_published, 90, f"{len(expected)} streamed changes")

    events = [r for r in records if r["value"] is not None]
    by_id = collections.defaultdict(list)
    for record in events:
        by_id[record["value"]["event_id"]].append(record)
    # Duplicates are exact re-sends: same id => same key, op, images and source position.
    for copies in by_id.values():
        first_copy = {k: v for k, v in copies[0]["value"].items() if k != "ts_ms"}
        assert all({k: v for k, v in c["value"].items() if k != "ts_ms"} == first_copy for c in copies)
        assert all(c["key"] == copies[0]["key"] for c in copies)
    streamed = [c[0]["value"] for c in by_id.values() if c[0]["value"]["op"] != "r"]
    got = collections.Counter((v["op"], (v["after"] or v["before"])["id"]) for v in streamed)
    assert got == collections.Counter(expected)  # every change, exactly once after dedupe by event_id
    assert len({c[0]["value"]["event_id"] for c in by_id.values() if c[0]["value"]["op"] == "r"}) == 500

    # Folding the topic (per key, in partition order, tombstones delete) gives the table's contents.
    state = {}
    for record in records:
        key = record["key"]["id"]
        value = record["value"]
        if value is None or value["op"] == "d":
            state.pop(key, None)
        else:
            state[key] = value["after"]
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, status, amount, note FROM public.{table}")  # numeric(12, 2): an Avro decimal
        rows = {r[0]: r[1:] for r in cur.fetchall()}
    assert {k: (v["status"], v["amount"], v["note"]) for k, v in state.items()} == rows
    sample = next(v for v in streamed if v["op"] == "c")
    assert sample["source"]["table"] == table and sample["source"]["txId"] and sample["source"]["snapshot"] == "false"
    # timestamptz travels as timestamp-micros (UTC); fastavro reads it back as an aware datetime.
    assert sample["after"]["updated_at"] == datetime(2026, 11, 26, tzinfo=timezone.utc)

    # The slot's confirmed LSN moved past the workload, and SIGTERM stops the connector cleanly.
    with conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        end_lsn = int(cur.fetchone()[0])
    wait_for(lambda: slot_lsn(conn, slot) > start_lsn and slot_lsn(conn, slot) >= end_lsn - 1_000_000, 30,
             "the slot's confirmed LSN to advance")
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0, second.log_path.read_text()[-2000:]


def test_idle_slot_does_not_pin_wal(postgres_settings, kafka_bootstrap, registry_url, run_connector, unique):
    """Writes to tables the connector does not capture still let the slot's LSN move (heartbeats)."""
    conn = psycopg2.connect(postgres_settings.dsn())
    conn.autocommit = True
    captured, other = f"cdc_hb_{unique}", f"cdc_other_{unique}"
    name = f"hb-{unique}"
    slot = f"kappa_{name}".replace("-", "_")
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE public.{captured} (id int PRIMARY KEY)")
        cur.execute(f"CREATE TABLE public.{other} (id int PRIMARY KEY, pad text)")
    proc = run_connector("cdc", {"name": name, "tables": [f"public.{captured}"], "topic_prefix": f"it.hb{unique}",
                                 "heartbeat_interval_s": 0.5, "commit_interval_s": 0.3})
    try:
        wait_for(lambda: slot_lsn(conn, slot), 60, "the slot")
        before = slot_lsn(conn, slot)
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO public.{other} SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
            cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            written = int(cur.fetchone()[0])
        wait_for(lambda: slot_lsn(conn, slot) >= written, 30, "the idle slot to follow the WAL")
        assert slot_lsn(conn, slot) > before
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            cur.execute(f"DROP PUBLICATION IF EXISTS {slot}")
            cur.execute(f"DROP TABLE public.{captured}, public.{other}")
        conn.close()


def test_a_table_without_replica_identity_is_refused_or_captured_insert_only(
        postgres_settings, kafka_bootstrap, registry_url, run_connector, unique):
    """PostgreSQL refuses UPDATE and DELETE on a published table with no replica identity: the
    connector never publishes one as is. It says why and how to fix it, or, when told to, captures
    its inserts only (a publication WITH (publish = 'insert')), keyed by the declared columns."""
    conn = psycopg2.connect(postgres_settings.dsn())
    conn.autocommit = True
    table, name = f"cdc_nokey_{unique}", f"nk-{unique}"
    qualified, slot = f"public.{table}", f"kappa_{name}".replace("-", "_")
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {qualified} (site text, seq int, reading real)")
        cur.execute(f"INSERT INTO {qualified} VALUES ('a', 1, 0.5)")
    config = {"name": name, "tables": [qualified], "topic_prefix": f"it.nk{unique}", "commit_interval_s": 0.3}
    proc = None
    try:
        refused = run_connector("cdc", config, "refused.log")
        assert refused.wait(60) == 2  # refused: the configuration is to fix, not to retry
        message = refused.log_path.read_text()
        assert f"table {qualified} has no replica identity" in message and "REPLICA IDENTITY FULL" in message
        assert "insert_only" in message and "ADD PRIMARY KEY" in message
        with conn.cursor() as cur:  # not published, so still updatable
            cur.execute(f"UPDATE {qualified} SET reading = 1.5")
            cur.execute("SELECT count(*) FROM pg_publication_tables WHERE tablename = %s", (table,))
            assert cur.fetchone()[0] == 0

        proc = run_connector("cdc", {**config, "insert_only": [qualified], "keys": {qualified: ["site", "seq"]}})
        topic = f"it.nk{unique}.{table}"
        wait_for(lambda: slot_lsn(conn, slot), 60, "the slot")
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {qualified} VALUES ('b', 2, 2.5)")
            cur.execute(f"UPDATE {qualified} SET reading = 3.5 WHERE site = 'b'")  # allowed, not published
            cur.execute(f"DELETE FROM {qualified} WHERE site = 'a'")
            cur.execute(f"INSERT INTO {qualified} VALUES ('c', 3, 4.5)")
        records = wait_for(lambda: (lambda r: r if len([x for x in r if x["value"]["op"] == "c"]) >= 2 else None)(
            read_topic(kafka_bootstrap, registry_url, topic)), 60, "the inserts")
        assert sorted([(r["value"]["op"], r["key"]) for r in records], key=lambda r: r[1]["seq"]) == [
            ("r", {"site": "a", "seq": 1}), ("c", {"site": "b", "seq": 2}), ("c", {"site": "c", "seq": 3})]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                        (slot,))
            cur.execute(f"DROP PUBLICATION IF EXISTS {slot}, {slot}_inserts")
            cur.execute(f"DROP TABLE {qualified}")
        conn.close()


def test_a_lost_connection_is_counted_and_streaming_resumes(postgres_settings, kafka_bootstrap, registry_url,
                                                            run_connector, unique):
    """PostgreSQL ends the connector's sessions (a failover, a restart): the connector counts a source
    error, reconnects with backoff and streams on from its slot, and its last-event gauge follows."""
    conn = psycopg2.connect(postgres_settings.dsn())
    conn.autocommit = True
    table, name = f"cdc_lost_{unique}", f"lost-{unique}"
    slot, topic, port = f"kappa_{name}".replace("-", "_"), f"it.lost{unique}.{table}", free_port()
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE public.{table} (id int PRIMARY KEY)")
    proc = run_connector("cdc", {"name": name, "tables": [f"public.{table}"], "topic_prefix": f"it.lost{unique}",
                                 "commit_interval_s": 0.3, "metrics_port": port})
    try:
        wait_for(lambda: slot_lsn(conn, slot), 60, "the slot")
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO public.{table} VALUES (1)")
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                        (f"kappa-cdc-{name}",))
            assert cur.rowcount == 2  # its catalog session and its replication session
            cur.execute(f"INSERT INTO public.{table} VALUES (2)")
        published = wait_for(lambda: {r["key"]["id"] for r in read_topic(kafka_bootstrap, registry_url, topic)
                                      if r["value"]} >= {1, 2} or None, 60, "both inserts")
        assert published
        scraped = wait_for(lambda: _metrics(port) if 'kind="connection"} 1.0' in _metrics(port)
                           and "kappa_connector_last_event_timestamp_seconds{" in _metrics(port) else None,
                           30, "the source error and the last event time on /metrics")
        assert f'kappa_connector_source_errors_total{{connector="{name}",kind="connection"}} 1.0' in scraped
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.log_path.read_text()[-2000:]
        with conn.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            cur.execute(f"DROP PUBLICATION IF EXISTS {slot}")
            cur.execute(f"DROP PUBLICATION IF EXISTS {slot}_inserts")
            cur.execute(f"DROP TABLE public.{table}")
        conn.close()


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()
