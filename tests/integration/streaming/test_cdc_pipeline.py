"""A PostgreSQL table no code knows, captured by the CDC connector and carried into all four sinks by a
pipeline file of a few lines: every type of the connector's type table equal to the source, from the
snapshot and from the stream; a column added upstream while it runs; a change no store can take."""
from __future__ import annotations

import signal
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg2
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.cdc.connector import SESSION_OPTIONS
from streaming.jobs import pipeline
from streaming.plan import serving_table
from tests.integration import job_process, sink_contents
from tests.integration.kafka_topics import read_topic, wait_for

# Every type of the connector's type table (connectors/cdc/types.py), a composite primary key.
COLUMNS = """region int, order_no bigint, qty smallint, amount numeric(12, 2), ratio numeric, note text,
             code char(5), label varchar(20), paid boolean, weight real, score double precision,
             placed timestamp, placed_tz timestamptz, day date, ref uuid, payload jsonb, doc json, blob bytea,
             at_time time, took interval, PRIMARY KEY (region, order_no)"""
# The source's values as the sinks must hold them: the types Avro has kept as they are, the others
# (unconstrained numeric, uuid, json, time, interval) as the exact text PostgreSQL prints.
EXPECTED = """SELECT region, order_no, qty, amount, ratio::text, note, code, label, paid, weight, score, placed,
                     placed_tz, day, ref::text, payload::text, doc::text, blob, at_time::text, took::text{extra}
                FROM public.{table}"""
DERIVED = {"region": "int", "order_no": "bigint", "qty": "int", "amount": "decimal(12,2)", "ratio": "string",
           "code": "string", "paid": "boolean", "weight": "float", "score": "double", "placed": "timestamp_ntz",
           "placed_tz": "timestamp", "day": "date", "ref": "string", "payload": "string", "blob": "binary",
           "took": "string"}


def _row(i: int) -> tuple:
    """Row ``i``: row 0 is null but for its key; the others vary signs, padding, precision, zones, bytes."""
    if i == 0:
        return (1, 0) + (None,) * 18
    moment = datetime(1969 + i, 12, 31, 23, 59, 58, 123457 * i % 1_000_000)
    return (i % 2 + 1, 10**12 + i, -i, Decimal(f"{-i}{i}.5{i % 10}"), Decimal(f"1234567890.123456789{i}"),
            f" text {i} ", "ab" if i % 2 else "abcde", "" if i == 3 else f"label-{i}", i % 2 == 0,
            0.5 * i - 1.25, 1 / 3 * i, moment, moment.replace(tzinfo=timezone(timedelta(hours=5, minutes=30))),
            date(1960 + i, 2, 29 if i % 4 == 0 else 28), str(uuid.UUID(int=i * 7919)),
            f'{{"n": {i}, "nested": {{"list": [1, "two", null]}}, "s": "ü"}}', f'{{ "kept":  "as typed {i}" }}',
            bytes([0, 255, i, 92]) + "é".encode(), f"23:59:{i:02d}.5", f"{i} days 02:03:04")


def _insert(cur, table: str, rows: list[tuple]) -> None:
    cur.executemany(f"INSERT INTO public.{table} VALUES ({', '.join(['%s'] * 20)})", rows)


def _expected(conn, table: str, names: list[str], extra: str = "") -> dict:
    with conn.cursor() as cur:
        cur.execute(EXPECTED.format(table=table, extra=extra))
        rows = cur.fetchall()
    out = {}
    for row in rows:
        values = dict(zip(names, row))
        out[(values["region"], values["order_no"])] = {c: sink_contents.comparable(v, exact=True)
                                                       for c, v in values.items()}
    return out


def _in_sinks(settings, namespace: str, table, names: list[str]) -> dict[str, dict]:
    found = sink_contents.all_sinks(settings, namespace, table, exact=True)
    return {store: {k: {c: v for c, v in row.items() if c in names} for k, row in rows.items()}
            for store, rows in found.items()}


def _millis(rows: dict) -> dict:
    """``rows`` at Cassandra's precision: its timestamps hold milliseconds."""
    return {k: {c: sink_contents.comparable(v) for c, v in row.items()} for k, row in rows.items()}


def _wait_until_held(settings, namespace: str, table, names: list[str], expected: dict, timeout: float,
                     what: str) -> None:
    """Wait until every sink holds ``expected``; on time-out, show how each sink differs."""
    wanted = {"postgres": expected, "clickhouse": expected, "lake": expected, "cassandra": _millis(expected)}
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = _in_sinks(settings, namespace, table, names)
        except Exception as exc:  # tables not created yet, columns not added yet
            found = {"error": repr(exc)}
        if found == wanted:
            return
        if time.monotonic() > deadline:
            assert found == wanted, what
        time.sleep(1.0)


@pytest.fixture
def source_table(postgres_settings, unique):
    conn = psycopg2.connect(postgres_settings.dsn(), options=SESSION_OPTIONS)
    conn.autocommit = True
    table = f"shipments_{unique}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE public.{table} ({COLUMNS})")
    yield conn, table
    name = f"kappa_it_{unique}"
    with conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active", (name,))
        cur.execute(f"DROP PUBLICATION IF EXISTS {name}")
        cur.execute(f"DROP TABLE public.{table}")
    conn.close()


def test_a_new_table_reaches_every_sink_equal_to_the_source(source_table, settings, spark, kafka_bootstrap,
                                                            registry_url, run_connector, unique, tmp_path):
    conn, table = source_table
    names = ["region", "order_no", "qty", "amount", "ratio", "note", "code", "label", "paid", "weight", "score",
             "placed", "placed_tz", "day", "ref", "payload", "doc", "blob", "at_time", "took"]
    with conn.cursor() as cur:
        _insert(cur, table, [_row(i) for i in range(5)])  # read by the snapshot
    prefix, topic, namespace = f"it.cdc{unique}", f"it.cdc{unique}.{table}", f"cdc_{unique}"
    connector = run_connector("cdc", {"name": f"it-{unique}", "tables": [f"public.{table}"], "topic_prefix": prefix,
                                      "commit_interval_s": 0.3, "heartbeat_interval_s": 1.0})
    wait_for(lambda: len(read_topic(kafka_bootstrap, registry_url, topic)) >= 5, 90, "the snapshot in Kafka")

    # The whole pipeline: no key (the connector registered the table's), no Python, no SQL.
    path = tmp_path / "shipments.toml"
    path.write_text(f'''name = "shipments-{unique}"
topic = "{topic}"
namespace = "{namespace}"
checkpoint_dir = "{tmp_path / 'checkpoints'}"
trigger_seconds = 0.5
lake_trigger_seconds = 2
''')
    job = job_process.run_file(path, tmp_path, "shipments")
    loaded = pipeline.load(path)
    derived = serving_table(loaded.definition(settings), loaded, settings, spark)
    assert derived.key == ("region", "order_no")
    assert {c: t for c, t in derived.columns if c in DERIVED} == DERIVED

    expected = _expected(conn, table, names)
    _wait_until_held(settings, namespace, derived, names, expected, 180,
                     "the snapshot in every sink, equal to the source")

    with conn.cursor() as cur:  # streamed: new rows, an update of every column, a delete
        _insert(cur, table, [_row(i) for i in range(5, 10)])
        cur.execute(f"UPDATE public.{table} SET qty = 7, code = 'x', note = '', placed = '2026-12-02 10:11:12.999999',"
                    f" blob = '\\x00'::bytea, payload = '[]', took = '-1 mon' WHERE region = 1 AND order_no = 0")
        cur.execute(f"DELETE FROM public.{table} WHERE order_no = {10**12 + 2}")
    expected = _expected(conn, table, names)
    assert len(expected) == 9
    _wait_until_held(settings, namespace, derived, names, expected, 120,
                     "the streamed changes in every sink, equal to the source")

    # A column added upstream while both run: a new schema version, the column in every sink.
    registry = SchemaRegistryClient({"url": registry_url})
    versions = len(registry.get_versions(f"{topic}-value"))
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE public.{table} ADD COLUMN carrier varchar(10)")
        cur.execute(f"INSERT INTO public.{table} (region, order_no, carrier, amount) VALUES (3, 1, 'DHL', 1.10)")
    wait_for(lambda: len(registry.get_versions(f"{topic}-value")) == versions + 1, 60, "the new schema version")
    evolved = wait_for(lambda: (lambda t: t if "carrier" in t.column_names else None)(
        serving_table(loaded.definition(settings), loaded, settings, spark)), 30, "the derived column")
    expected = _expected(conn, table, names + ["carrier"], extra=", carrier")
    assert expected[(3, 1)]["carrier"] == "DHL" and expected[(1, 0)]["carrier"] is None
    _wait_until_held(settings, namespace, evolved, names + ["carrier"], expected, 180,
                     "the new column in every sink: the new row carries it, the old ones read null")

    # A change the stores cannot take in place (a column's type): the job stops at once and says why.
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE public.{table} ALTER COLUMN qty TYPE bigint")
        cur.execute(f"INSERT INTO public.{table} (region, order_no, qty) VALUES (3, 2, 5000000000)")
    assert job.wait(180) == 1, job.log_path.read_text()[-3000:]
    last = job_process.messages(job)[-1]
    assert f"shipments-{unique}" in last and "qty" in last and "int" in last and "bigint" in last, last
    assert connector.poll() is None
    connector.send_signal(signal.SIGTERM)
    assert connector.wait(30) == 0
