"""The CDC connector's envelope beside Debezium's, type by type, for the same changes.

Both stream one table holding a column of every type in the connector's type table
(docs/cdc-types.md), each with its own slot and publication: an insert, an insert of NULLs, an
update and a delete (REPLICA IDENTITY FULL, so both carry the whole ``before``). Each side's values
are read by its own schema (Avro logical types; Connect's logical names for Debezium's
``JsonConverter`` output) and compared: a value that differs fails the test; a value that is the
same in another form (a ``time`` as text against Debezium's microseconds) must be one of the
documented differences below, so a new one fails too. ``op``, the key, ``source.lsn``,
``source.txId`` and ``source.ts_ms`` must agree.

Not in ``make test`` (a Kafka Connect worker and Debezium's jars): ``make test-peers``.
"""
from __future__ import annotations

import base64
import json
import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import psycopg2
import pytest
from confluent_kafka import Consumer, TopicPartition

from stack.kafka_connect import ConnectWorker, debezium_postgres
from tests.integration.kafka_topics import read_topic, wait_for

pytestmark = pytest.mark.peer

COLUMNS = {
    "c_smallint": ("smallint", "7"), "c_integer": ("integer", "70000"), "c_bigint": ("bigint", "7000000000"),
    "c_real": ("real", "1.5"), "c_double": ("double precision", "2.25"), "c_boolean": ("boolean", "true"),
    "c_numeric": ("numeric(12, 3)", "12345.678"), "c_numeric_free": ("numeric", "3.14159265358979323846"),
    "c_timestamptz": ("timestamptz", "'2026-11-26 01:02:03.123456+00'"),
    "c_timestamp": ("timestamp", "'2026-11-26 01:02:03.123456'"), "c_date": ("date", "'2026-11-26'"),
    "c_bytea": ("bytea", "'\\x00ff10'::bytea"), "c_uuid": ("uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"),
    "c_char": ("char(5)", "'ab'"), "c_varchar": ("varchar(20)", "'hello'"), "c_text": ("text", "'some text'"),
    "c_json": ("json", "'{\"a\": 1}'"), "c_jsonb": ("jsonb", "'{\"b\": [1, 2]}'"),
    "c_time": ("time", "'01:02:03.5'"), "c_interval": ("interval", "'1 day 02:03:04'"),
    "c_oid": ("oid", "4242"),
}
UPDATE = {"c_integer": "70001", "c_numeric": "1.000", "c_timestamptz": "'2026-12-01 00:00:00+00'",
          "c_text": "'changed'", "c_time": "'23:59:59'"}

# Same value, another form: what Debezium's defaults (time.precision.mode=adaptive,
# interval.handling.mode=numeric, decimal.handling.mode=precise) send, against the connector's form.
DOCUMENTED = {
    "c_numeric_free": "an unconstrained numeric: the exact text (Debezium's string mode) against Debezium's "
                      "VariableScaleDecimal struct (scale + unscaled bytes)",
    "c_time": "time: the text PostgreSQL prints against Debezium's MicroTime (microseconds since midnight)",
    "c_interval": "interval: ISO 8601 text against Debezium's MicroDuration (microseconds, a month as 30 days)",
}


def _iso_duration_micros(text: str) -> int:
    """'P1DT2H3M4S' (IntervalStyle iso_8601, days and smaller) as microseconds."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", text)
    days, hours, minutes, seconds = (float(g or 0) for g in match.groups())
    return round((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1_000_000)


def _same_in_another_form(ours, theirs) -> bool:
    if isinstance(ours, str) and isinstance(theirs, Decimal):
        return Decimal(ours) == theirs
    if isinstance(ours, str) and isinstance(theirs, int):
        if re.fullmatch(r"\d\d:\d\d:\d\d(\.\d+)?", ours):
            t = time.fromisoformat(ours)
            return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond == theirs
        if ours.startswith("P"):
            return _iso_duration_micros(ours) == theirs
    return False


def _connect_value(schema: dict, value):
    """A Debezium field's JSON value as Python, by its Connect schema's logical name."""
    if value is None:
        return None
    name = schema.get("name")
    if name == "org.apache.kafka.connect.data.Decimal":
        unscaled = int.from_bytes(base64.b64decode(value), "big", signed=True)
        return Decimal(unscaled).scaleb(-int(schema["parameters"]["scale"]))
    if name == "io.debezium.data.VariableScaleDecimal":
        return Decimal(int.from_bytes(base64.b64decode(value["value"]), "big", signed=True)).scaleb(-value["scale"])
    if name == "io.debezium.time.ZonedTimestamp":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if name == "io.debezium.time.MicroTimestamp":
        return datetime(1970, 1, 1) + timedelta(microseconds=value)
    if name == "io.debezium.time.Date":
        return date(1970, 1, 1) + timedelta(days=value)
    if schema["type"] == "bytes":
        return base64.b64decode(value)
    return value


def _debezium_row(struct_schema: dict, row: dict | None) -> dict | None:
    if row is None:
        return None
    fields = {f["field"]: f for f in struct_schema["fields"]}
    return {k: _connect_value(fields[k], v) for k, v in row.items()}


def _ours_value(value):
    """Avro as confluent-kafka decodes it, in the forms Debezium's side is read into."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc)
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value)
    return value


def _debezium_events(bootstrap: str, topic: str) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-debezium", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    events = []
    for _ in range(20):
        batch = consumer.consume(1000, 0.5)
        events += [m for m in batch if not m.error() and m.value() is not None]
    consumer.close()
    decoded = []
    for message in events:
        envelope = json.loads(message.value())
        schema = {f["field"]: f for f in envelope["schema"]["fields"]}
        payload = envelope["payload"]
        decoded.append({"key": json.loads(message.key())["payload"], "op": payload["op"],
                        "before": _debezium_row(schema["before"], payload["before"]),
                        "after": _debezium_row(schema["after"], payload["after"]),
                        "source": payload["source"]})
    return sorted(decoded, key=lambda e: int(e["source"]["lsn"]))


def test_every_type_of_the_type_table_beside_debezium(settings, postgres_settings, kafka_bootstrap, registry_url,
                                                      run_connector, unique, tmp_path):
    table, name = f"peer_types_{unique}", f"peer-{unique}"
    conn = psycopg2.connect(postgres_settings.dsn())
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE public.{table} (id bigint PRIMARY KEY, "
                + ", ".join(f"{c} {t}" for c, (t, _) in COLUMNS.items()) + ")")
    cur.execute(f"ALTER TABLE public.{table} REPLICA IDENTITY FULL")
    dbz = ConnectWorker(debezium_postgres(f"dbz-{unique}", settings, tables=[f"public.{table}"],
                                          topic_prefix=f"it.dbz{unique}", slot=f"dbz_{unique}",
                                          publication=f"dbz_{unique}", snapshot="no_data"),
                        tmp_path / "debezium", settings)
    slot = f"kappa_{name}".replace("-", "_")
    try:
        run_connector("cdc", {"name": name, "tables": [f"public.{table}"], "topic_prefix": f"it.cdc{unique}",
                              "snapshot": "never", "commit_interval_s": 0.3, "heartbeat_interval_s": 1.0})
        dbz.start()
        wait_for(lambda: cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name IN (%s, %s) "
                                     "AND active", (slot, f"dbz_{unique}")) or cur.fetchone()[0] == 2,
                 60, "both slots streaming")
        columns = ", ".join(COLUMNS)
        cur.execute(f"INSERT INTO public.{table} (id, {columns}) VALUES (1, "
                    + ", ".join(v for _, v in COLUMNS.values()) + ")")
        cur.execute(f"INSERT INTO public.{table} (id) VALUES (2)")
        cur.execute(f"UPDATE public.{table} SET " + ", ".join(f"{c} = {v}" for c, v in UPDATE.items()) + " WHERE id = 1")
        cur.execute(f"DELETE FROM public.{table} WHERE id = 2")

        ours = wait_for(lambda: (lambda r: r if len(r) >= 4 else None)(
            [x for x in read_topic(kafka_bootstrap, registry_url, f"it.cdc{unique}.{table}") if x["value"]]),
            60, "the connector's four changes")
        theirs = wait_for(lambda: (lambda r: r if len(r) >= 4 else None)(
            _debezium_events(kafka_bootstrap, f"it.dbz{unique}.public.{table}")), 60, "Debezium's four changes")
    finally:
        dbz.stop()
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name IN (%s, %s) AND NOT active", (slot, f"dbz_{unique}"))
        for publication in (slot, f"{slot}_inserts", f"dbz_{unique}"):
            cur.execute(f"DROP PUBLICATION IF EXISTS {publication}")
        cur.execute(f"DROP TABLE public.{table}")
        conn.close()

    ours = sorted(ours, key=lambda r: r["value"]["source"]["lsn"])
    assert [r["key"] for r in ours] == [e["key"] for e in theirs]
    ours = [r["value"] for r in ours]
    assert [e["op"] for e in ours] == [e["op"] for e in theirs] == ["c", "c", "u", "d"]
    differences, forms = [], {}
    for mine, other in zip(ours, theirs):
        for field in ("lsn", "txId", "ts_ms"):
            if mine["source"][field] != int(other["source"][field]):
                differences.append(f"{mine['op']}: source.{field} {mine['source'][field]} != {other['source'][field]}")
        for part in ("before", "after"):
            a, b = mine[part], other[part]
            if (a is None) != (b is None):
                differences.append(f"{mine['op']}: {part} {a!r} against {b!r}")
                continue
            for column in (a or {}):
                x, y = _ours_value(a[column]), b[column]
                if x == y:
                    continue
                if _same_in_another_form(x, y):
                    forms[column] = f"{x!r} against {y!r}"
                else:
                    differences.append(f"{mine['op']} {part}.{column}: {x!r} against Debezium's {y!r}")
    assert not differences, "\n".join(differences)
    assert set(forms) == set(DOCUMENTED), forms
