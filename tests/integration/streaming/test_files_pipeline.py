"""CSV files with a composite key and no time column, a contract and pipeline from ``kappa
new``, enriched from a reference table into ClickHouse and the lake; an appended file adds only its new rows."""
from __future__ import annotations

import json
import subprocess
import sys

import clickhouse_connect
import psycopg2

from streaming.jobs import pipeline
from streaming.jobs.runner import JobRunner
from streaming.plan import serving_table
from tests.integration import sink_contents
from tests.integration.job_process import REPO
from tests.integration.kafka_topics import read_topic, wait_for

FIRST = "site,sku,store_id,qty,price\n" + "".join(f"eu,sku-{i},{i % 4},{i},{i}.25\n" for i in range(1, 9))
APPENDED = "".join(f"us,sku-{i},{i % 4},{i * 10},\n" for i in range(1, 4))


def _clickhouse_rows(settings, namespace: str) -> list[tuple]:
    ch = settings.clickhouse
    client = clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password)
    return client.query(f"SELECT site, sku, qty, store_region, event_time FROM {namespace}.stock "
                        "ORDER BY site, sku").result_rows  # no FINAL: every row that was written


def test_csv_files_with_a_composite_key_and_no_time_reach_clickhouse(settings, spark, kafka_bootstrap, registry_url,
                                                                      run_connector, unique, tmp_path):
    inbox, namespace, topic = tmp_path / "inbox", f"files_{unique}", f"it.{unique}.files.stock"
    inbox.mkdir()
    csv = inbox / "stock-1.csv"
    csv.write_text(FIRST)
    path, contract = tmp_path / "stock.toml", tmp_path / "contracts" / "stock.avsc"
    made = subprocess.run([sys.executable, "-m", "kappa", "new", topic, "--sample", str(csv), "--key", "site,sku",
                           "--namespace", namespace, "--output", str(path), "--contract", str(contract)],
                          cwd=REPO, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    fields = {f["name"]: f["type"] for f in json.loads(contract.read_text())["fields"]}
    assert fields["site"] == "string" and fields["store_id"] == ["null", "long"] and fields["price"] == ["null", "double"]
    # The user's edit: a reference join, appended to the generated file.
    with path.open("a") as f:
        f.write('\n[reference.stores]\npostgres = "stores"\njoin = ["store_id"]\n'
                'columns = { region = "store_region" }\n')

    conn = psycopg2.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {namespace}")
        cur.execute(f"CREATE TABLE {namespace}.stores (store_id bigint PRIMARY KEY, region text)")
        cur.execute(f"INSERT INTO {namespace}.stores VALUES (1, 'north'), (2, 'south'), (3, 'west')")  # no store 0
    conn.close()

    connector = run_connector("files", {"name": f"stock-{unique}", "topic": topic, "contract": str(contract),
                                        "directory": str(inbox), "key": ["site", "sku"], "poll_interval_s": 0.3})
    wait_for(lambda: len(read_topic(kafka_bootstrap, registry_url, topic)) >= 8, 60, "the first file's 8 rows")
    job = pipeline.load(path, checkpoint_dir=str(tmp_path / "checkpoints"), sinks=["clickhouse", "lake"])
    JobRunner(job.definition(settings), job, settings, spark).run(available_now=True)

    first = _clickhouse_rows(settings, namespace)
    assert [(r[0], r[1], r[2], r[3]) for r in first] == [
        ("eu", f"sku-{i}", i, {0: None, 1: "north", 2: "south", 3: "west"}[i % 4]) for i in range(1, 9)]
    landed = {r[4] for r in first}
    assert len(landed) == 1  # no time column: the ingest time, when the file landed

    with csv.open("a") as f:  # the same file grows by three rows
        f.write(APPENDED)
    wait_for(lambda: len(read_topic(kafka_bootstrap, registry_url, topic)) >= 11, 60, "the appended rows")
    wait_for(lambda: connector.log_path.read_text().count('"scan complete"') >= 3, 30, "a scan after the append")
    records = read_topic(kafka_bootstrap, registry_url, topic)
    assert len(records) == 11 and len({r["value"]["event_id"] for r in records}) == 11  # only the new rows
    assert {tuple(r["key"].values()) for r in records} == {(r["value"]["site"], r["value"]["sku"]) for r in records}
    JobRunner(job.definition(settings), job, settings, spark).run(available_now=True)

    rows = _clickhouse_rows(settings, namespace)
    assert len(rows) == 11  # counted without FINAL: nothing written twice
    assert [(r[0], r[1], r[2]) for r in rows if r[0] == "us"] == [("us", f"sku-{i}", i * 10) for i in range(1, 4)]
    assert all(r[4] > next(iter(landed)) for r in rows if r[0] == "us")
    table = serving_table(job.definition(settings), job, settings, spark)
    assert table.key == ("site", "sku") and "store_region" in table.column_names
    lake = sink_contents.lake_changes(settings, namespace, table)
    assert len(lake) == 11 and len({(r["site"], r["sku"]) for r in lake}) == 11
