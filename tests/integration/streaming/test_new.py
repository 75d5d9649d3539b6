"""``kappa new`` on the real registry and PostgreSQL: starting pipeline files that load."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg2
import requests
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from prometheus_client.parser import text_string_to_metric_families

from kappa.cli import main
from schemas.serde import AvroSerializer
from streaming.jobs import pipeline
from tests.conftest import REPO, free_port
from tests.integration.kafka_topics import create_topic


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


def test_a_pipeline_written_by_new_into_the_pipelines_folder_is_found_by_every_command(
        settings, kafka_bootstrap, registry_url, postgres_settings, unique, tmp_path):
    """``streaming.pipelines_dir`` is where ``kappa new`` writes and where every command looks a
    pipeline up by name: run, backfill, rebuild, the lag exporter and the Kubernetes generation."""
    folder = tmp_path / "pipelines"
    env = {**os.environ, "KAPPA_STREAMING__PIPELINES_DIR": str(folder)}
    topic, name = f"it.{unique}.api.parcels_{unique}", f"parcels_{unique}"
    schema = {"type": "record", "name": "Parcel", "fields": [
        {"name": "event_id", "type": "string"}, {"name": "event_time", "type": "long"},
        {"name": "parcel_id", "type": "long"}, {"name": "weight", "type": ["null", "double"], "default": None}]}
    create_topic(kafka_bootstrap, topic, 1)
    registry = SchemaRegistryClient({"url": registry_url})
    serialize = AvroSerializer(registry, f"{topic}-value", schema)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(3):
        producer.produce(topic, key=str(i).encode(), value=serialize(
            {"event_id": f"e{i}", "event_time": 1_764_000_000_000 + i, "parcel_id": i, "weight": i / 2}))
    assert producer.flush(30) == 0

    def kappa(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kappa", *arguments], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    new = kappa("new", topic, "--key", "parcel_id")
    assert new.returncode == 0, new.stderr
    written = folder / f"{name}.toml"
    assert new.stdout.strip() == f"wrote {written}"
    written.write_text(written.read_text().replace('# sinks = [', 'sinks = ["postgres"]\n# sinks = [')
                       .replace('namespace = "serving"', f'namespace = "new_{unique}"'))

    ran = kappa("run", name, "--available-now")
    assert ran.returncode == 0, ran.stderr[-3000:]
    with psycopg2.connect(postgres_settings.dsn()) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT parcel_id, weight FROM "new_{unique}"."{name}" ORDER BY parcel_id')
        assert cur.fetchall() == [(0, 0.0), (1, 0.5), (2, 1.0)]

    backfill = kappa("backfill", "--pipeline", name, "--from", "earliest", "--to", "latest", "--dry-run")
    assert backfill.returncode == 0 and f"{topic}" in backfill.stdout, backfill.stderr[-3000:]
    rebuild = kappa("rebuild", "--pipeline", name, "--step", "start", "--launch", "none")
    assert rebuild.returncode == 0 and f"kappa run {written}" in rebuild.stdout, rebuild.stderr[-3000:]

    port = free_port()
    lag = subprocess.Popen([sys.executable, "-m", "kappa", "lag-exporter", "--metrics-port", str(port)],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = lag.stdout.readline()
        assert "lag of " in first and name in first and "orders" in first, first
        exported = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
        series = [s for family in text_string_to_metric_families(exported) for s in family.samples
                  if s.name == "kappa_streaming_lag_offsets" and s.labels.get("pipeline") == name]
        assert [(s.labels["topic"], s.value) for s in series] == [(topic, 0.0)]  # measured: it read all 3
    finally:
        lag.terminate()
        lag.wait(30)

    generated = subprocess.run([sys.executable, "-c", "from k8s import generate; print(generate.pipelines())"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert f"{name}.toml: |" in generated.stdout and "orders.toml: |" in generated.stdout, generated.stderr
