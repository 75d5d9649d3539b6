"""Shadow rebuilds on the real stack: ``kappa backfill --mode shadow`` writes a new version of a
pipeline's serving tables that equals what the live job wrote, row for row, in every store; a rerun
changes nothing; a second rebuild of the same pipeline is refused while one runs; the cut-over
switches readers at once (a reader process never sees an empty, half-built or mixed table); the
next version's live job starts where the replay ended; ``kappa versions --drop-old`` removes what readers left.

The topic carries CDC changes in Debezium's envelope (the connector's own schema code makes it):
inserts, updates, deletes with their tombstones, a second schema version with a new column, a row
the pipeline's validation rejects and a record that is not Avro.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import psycopg2

from streaming.jobs import pipeline as pipelines
from streaming.jobs.runner import JobRunner
from streaming.plan import serving_table
from streaming import versions
from tests.conftest import write_toml
from tests.integration import cdc_items, sink_contents
from tests.integration.job_process import REPO
from tests.integration.kafka_topics import create_topic


def _replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kappa", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def _pipeline_file(tmp_path, name: str, topic: str, namespace: str, upper: bool = False):
    path = tmp_path / f"{name}{'-upper' if upper else ''}.toml"
    values = {"name": name, "topic": topic, "namespace": namespace, "checkpoint_dir": str(tmp_path / "checkpoints"),
              "key": ["id"], "validate": {"range": {"qty": [0, 1000]}}}
    if upper:  # the changed transform: names in upper case
        values["normalise"] = {"upper": ["name"]}
    write_toml(path, values)
    return path


READER = textwrap.dedent("""
    import json, sys, time
    import clickhouse_connect, psycopg2
    from kappa.settings import get_settings
    from streaming.stores.cassandra import connect
    namespace, deadline = sys.argv[1], time.time() + float(sys.argv[2])
    s = get_settings()
    pg = psycopg2.connect(s.postgres.dsn()); pg.autocommit = True
    ch = clickhouse_connect.get_client(host=s.clickhouse.host, port=s.clickhouse.port,
                                       username=s.clickhouse.username, password=s.clickhouse.password)
    cluster, cassandra = connect(s)
    while time.time() < deadline:
        seen = {}
        with pg.cursor() as cur:
            cur.execute(f"SELECT count(*), count(*) FILTER (WHERE name = upper(name)) FROM {namespace}.items_current")
            seen["postgres"] = list(cur.fetchone())
        seen["clickhouse"] = list(ch.query(f"SELECT count(), countIf(name = upper(name)) FROM {namespace}.items "
                                           "FINAL WHERE NOT _deleted").result_rows[0])
        keyspace = cassandra.execute(f"SELECT keyspace_name FROM {namespace}.serving_versions "
                                     "WHERE table_name = 'items'").one()
        if keyspace is not None:
            names = [name for name, deleted in
                     cassandra.execute(f'SELECT name, "_deleted" FROM {keyspace.keyspace_name}.items') if not deleted]
            seen["cassandra"] = [len(names), sum(1 for name in names if name == name.upper())]
        print(json.dumps(seen), flush=True)
        time.sleep(0.05)
    cluster.shutdown()
""")


def test_a_shadow_rebuild_equals_the_live_job_then_readers_switch_at_once(spark, settings, kafka_bootstrap,
                                                                          registry_url, unique, tmp_path):
    topic, namespace, name = f"it.{unique}.cdc.items", f"versions_{unique}", f"items-{unique}"
    create_topic(kafka_bootstrap, topic, 2)
    items = cdc_items.Items(registry_url, kafka_bootstrap, topic)
    for i in range(24):
        items.change("c", {"id": i, "name": f"item {i}", "qty": i})
    for i in range(0, 24, 4):
        items.change("u", {"id": i, "name": f"item {i} v2", "qty": i + 100})
    for i in (3, 7, 11):
        items.change("d", {"id": i})
    items.change("c", {"id": 99, "name": "broken", "qty": -5})  # the pipeline's range rule rejects it
    items.garbage()
    items.add_note_column()
    for i in (1, 2, 5):
        items.change("u", {"id": i, "name": f"item {i} v3", "qty": i, "note": f"note {i}"})
    items.flush()

    path = _pipeline_file(tmp_path, name, topic, namespace)
    live = pipelines.load(path)
    JobRunner(live.definition(settings), live, settings, spark).run(available_now=True)
    table = serving_table(live.definition(settings), live, settings, spark)
    assert "note" in table.column_names
    written = sink_contents.all_sinks(settings, namespace, table)
    assert len(written["postgres"]) == 21 and written["postgres"][(1,)]["note"] == "note 1"
    assert all(len(rows) == 21 for rows in written.values())

    # 1. The shadow version equals what the live job wrote, in every store; readers still see version 1.
    home = versions.version_namespace(namespace, name, 2)
    plan = _replay("backfill", "--pipeline", str(path), "--from", "earliest", "--mode", "shadow", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"writes {home}.items in lake, clickhouse, cassandra, postgres" in plan.stdout, plan.stdout
    assert versions.listing(settings, namespace, name) == []  # a dry run records nothing
    first = _replay("backfill", "--pipeline", str(path), "--from", "earliest", "--mode", "shadow", "--no-cut-over",
                    "--chunk-events", "7")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "2 to the DLQ" in first.stdout and f"version 2 of {name} is built in {home}" in first.stdout, first.stdout
    assert sink_contents.all_sinks(settings, home, table) == written
    rows = cdc_items.clickhouse_rows(settings, home)
    again = _replay("backfill", "--pipeline", str(path), "--from", "earliest", "--mode", "shadow", "--no-cut-over",
                    "--chunk-events", "7")
    assert again.returncode == 0, again.stderr[-3000:]
    assert cdc_items.clickhouse_rows(settings, home) == rows  # the same version, the same chunks: nothing new
    assert sink_contents.all_sinks(settings, home, table) == written
    assert [(v.number, v.state) for v in versions.listing(settings, namespace, name)] == [(1, "active"), (2, "shadow")]

    # 4. A second rebuild while one runs is refused, and writes nothing.
    with versions.hold(settings, namespace, name, "shadow rebuild"):
        refused = _replay("backfill", "--pipeline", str(path), "--from", "earliest", "--mode", "shadow")
    assert refused.returncode == 2
    assert f"a shadow rebuild, cut-over or drop of pipeline {name} in {namespace} is running" in refused.stderr
    assert [v.number for v in versions.listing(settings, namespace, name)] == [1, 2]

    # The cut-over: every store's readers see version 2; version 1's tables are kept.
    cut = _replay("versions", "--pipeline", str(path), "--cut-over", "2")
    assert cut.returncode == 0, cut.stderr
    assert cdc_items.served(settings, namespace, table) == written
    moved = versions.version_namespace(namespace, name, 1)
    assert sink_contents.postgres(settings, moved, table) == written["postgres"]
    assert sink_contents.clickhouse(settings, moved, table) == written["clickhouse"]

    # Version 2's live job starts where the replay ended: new changes only, into version 2.
    resumed = pipelines.load(path).as_version(settings)
    assert (resumed.name, resumed.namespace) == (f"{name}__v2", home)
    items.change("c", {"id": 200, "name": "item 200", "qty": 1, "note": "after"})
    items.change("u", {"id": 0, "name": "item 0 v4", "qty": 4, "note": "after"})
    items.flush()
    JobRunner(resumed.definition(settings), resumed, settings, spark).run(available_now=True)
    now = cdc_items.served(settings, namespace, table)
    assert now["postgres"][(200,)]["note"] == "after" and now["postgres"][(0,)]["qty"] == 4
    assert all(rows == now["postgres"] for rows in now.values()) and len(now["postgres"]) == 22

    # 2. A rebuild with a changed transform (names in upper case) cuts over under a reader process.
    seen_file = tmp_path / "reader.jsonl"
    with seen_file.open("w") as sink:
        reader = subprocess.Popen([sys.executable, "-c", READER, namespace, "300"], cwd=REPO, stdout=sink,
                                  stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    upper = _replay("backfill", "--pipeline", str(_pipeline_file(tmp_path, name, topic, namespace, upper=True)), "--from", "earliest",
                    "--mode", "shadow", "--chunk-events", "5")
    assert upper.returncode == 0, upper.stderr[-3000:]
    assert "cut over: readers of" in upper.stdout and "version 3" in upper.stdout
    deadline = time.monotonic() + 60  # the reader's queries queue behind the rebuild's writes: let it catch up
    while time.monotonic() < deadline and reader.poll() is None and \
            not seen_file.read_text().endswith(json.dumps(dict.fromkeys(("postgres", "clickhouse", "cassandra"),
                                                                        [22, 22])) + "\n"):
        time.sleep(0.5)
    reader.terminate()
    _, err = reader.communicate(30)
    seen = [json.loads(line) for line in seen_file.read_text().splitlines() if line.endswith("}")]
    assert seen, err[-2000:]
    for store in ("postgres", "clickhouse", "cassandra"):
        states = [tuple(s[store]) for s in seen]
        assert set(states) <= {(22, 0), (22, 22)}, (store, sorted(set(states)))  # all old, or all new
        assert states[0] == (22, 0) and states[-1] == (22, 22), (store, err[-2000:])
        switch = states.index((22, 22))
        assert all(s == (22, 22) for s in states[switch:]), store  # never back
    assert [(v.number, v.state) for v in versions.listing(settings, namespace, name)] == \
        [(1, "previous"), (2, "previous"), (3, "active")]

    # Version 2's job, started again, sees it was superseded and stops without writing.
    runner = JobRunner(resumed.definition(settings), resumed, settings, spark)
    runner.run(available_now=True)
    assert runner._good_batches == 0

    # --drop-old: versions 1 and 2 go, in every store; readers keep version 3.
    dropped = _replay("versions", "--pipeline", str(path), "--drop-old")
    assert dropped.returncode == 0, dropped.stderr
    conn = psycopg2.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace WHERE nspname IN (%s, %s)", (moved, home))
        assert cur.fetchall() == []
    conn.close()
    databases = {r[0] for r in cdc_items.clickhouse(settings).query("SELECT name FROM system.databases").result_rows}
    assert not {moved, home} & databases
    from streaming.stores.cassandra import connect

    cluster, session = connect(settings)
    keyspaces = {r.keyspace_name for r in session.execute("SELECT keyspace_name FROM system_schema.keyspaces")}
    old_table = session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND "
                                "table_name = 'items'", (namespace,)).one()
    cluster.shutdown()
    assert home not in keyspaces and old_table is None  # version 1's table in the serving keyspace went too
    final = cdc_items.served(settings, namespace, table)
    assert len(final["postgres"]) == 22 and all(row["name"] == row["name"].upper() for row in final["postgres"].values())
    assert all(rows == final["postgres"] for rows in final.values())
