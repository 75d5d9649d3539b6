"""``kappa new`` on the real registry and PostgreSQL: starting pipeline files that load."""
from __future__ import annotations

import json

import psycopg2
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from kappa.cli import main
from streaming.jobs import pipeline


def test_a_cdc_table_from_the_catalog(settings, unique, tmp_path, capsys):
    conn = psycopg2.connect(settings.postgres.dsn())
    conn.autocommit = True
    table = f"new_invoices_{unique}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE public.{table} (shop int, no bigint, total numeric(10, 2) NOT NULL, note text, "
                    "PRIMARY KEY (shop, no))")
        cur.execute(f"CREATE TABLE public.{table}_log (line text)")
    try:
        out = tmp_path / "invoices.toml"
        assert main(["new", f"public.{table}", "--topic-prefix", "shop.cdc", "--output", str(out)]) == 0
        text = out.read_text()
        assert not any(line.startswith("key =") for line in text.splitlines())  # the connector registers it
        assert "primary key ['shop', 'no']" in text
        loaded = pipeline.load(out)
        assert loaded.topic == f"shop.cdc.{table}" and loaded.validate_.required == ["shop", "no", "total"]

        assert main(["new", f"public.{table}_log", "--topic-prefix", "shop.cdc", "--output",
                     str(tmp_path / "log.toml")]) == 2
        assert "has no primary key: pass --key" in capsys.readouterr().err
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE public.{table}, public.{table}_log")
        conn.close()


def test_an_events_topic_from_the_registry(settings, registry_url, unique, tmp_path, capsys):
    topic = f"it.{unique}.api.tickets"
    schema = {"type": "record", "name": "Ticket", "fields": [
        {"name": "event_id", "type": "string"}, {"name": "event_time", "type": "long"},
        {"name": "ticket_id", "type": "long"}, {"name": "priority", "type": {
            "type": "enum", "name": "Priority", "symbols": ["LOW", "HIGH"]}},
        {"name": "title", "type": ["null", "string"], "default": None}]}
    SchemaRegistryClient({"url": registry_url}).register_schema(f"{topic}-value", Schema(json.dumps(schema), "AVRO"))
    out = tmp_path / "tickets.toml"
    assert main(["new", topic, "--output", str(out)]) == 2
    assert "pass --key" in capsys.readouterr().err  # no key schema to take it from
    assert main(["new", topic, "--key", "ticket_id", "--output", str(out), "--namespace", "support"]) == 0
    loaded = pipeline.load(out)
    assert loaded.key == ["ticket_id"] and loaded.namespace == "support"
    assert loaded.validate_.required == ["ticket_id", "priority"] and loaded.validate_.enum == {
        "priority": ["LOW", "HIGH"]}
    assert main(["new", f"it.{unique}.nothing", "--key", "id", "--output", str(tmp_path / "x.toml")]) == 2
    assert "has no schema for topic" in capsys.readouterr().err
