"""The Kappa rebuild on the real stack, as a user runs it: the live job runs as a process; its
pipeline file gets a changed transform; ``kappa rebuild`` starts a second job
from the earliest retained offset into a new version while events keep arriving, cuts readers
over once that job has caught up, and the old job stops by itself with status 0. The new job goes
on as the live one (new events reach readers through it), takes over the pipeline's raw archive
where the old job left it (every record archived once), and a second process of it is refused.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import psycopg2
from confluent_kafka import Consumer, TopicPartition
from deltalake import DeltaTable

from streaming.jobs import pipeline as pipelines
from streaming.plan import serving_table
from streaming.stores import lake as lake_sink
from streaming import versions
from tests.conftest import write_toml
from tests.integration import cdc_items, job_process
from tests.integration.job_process import REPO
from tests.integration.kafka_topics import create_topic, wait_for


def _write_pipeline(path, name: str, topic: str, namespace: str, checkpoints, upper: bool) -> None:
    values = {"name": name, "topic": topic, "namespace": namespace, "checkpoint_dir": str(checkpoints),
              "key": ["id"], "archive": True, "trigger_seconds": 1}
    if upper:
        values["normalise"] = {"upper": ["name"]}
    write_toml(path, values)


def _end_offsets(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-kappa-rebuild"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1))
    finally:
        consumer.close()


def _archived(settings, namespace: str, topic: str) -> list[tuple[int, int]]:
    raw = DeltaTable(lake_sink.uri(settings, namespace, f"_raw/{topic}"),
                     storage_options=lake_sink.storage_options(settings)).to_pyarrow_table(columns=["partition", "offset"])
    return list(zip(raw.column("partition").to_pylist(), raw.column("offset").to_pylist()))


def test_the_kappa_rebuild_switches_readers_to_a_second_job_and_stops_the_old_one(
        spark, settings, kafka_bootstrap, registry_url, unique, tmp_path):
    topic, namespace, name = f"it.{unique}.cdc.items", f"kappa_{unique}", f"items-{unique}"
    create_topic(kafka_bootstrap, topic, 2)
    items = cdc_items.Items(registry_url, kafka_bootstrap, topic)
    for i in range(30):
        items.change("c", {"id": i, "name": f"item {i}", "qty": i})
    for i in (4, 8):
        items.change("d", {"id": i})
    items.flush()
    path = tmp_path / f"{name}.toml"
    _write_pipeline(path, name, topic, namespace, tmp_path / "checkpoints", upper=False)
    old = job_process.run_file(path, tmp_path, "v1")
    pipeline = pipelines.load(path)
    table = serving_table(pipeline.definition(settings), pipeline, settings, spark)
    wait_for(lambda: _count(settings, namespace) == 28, 180, "the live job's rows")

    # The changed transform, in the pipeline file; the live job goes on with the code it started with.
    _write_pipeline(path, name, topic, namespace, tmp_path / "checkpoints", upper=True)
    producing = threading.Event()

    def produce() -> None:  # events keep arriving while the second job catches up
        for i in range(100, 130):
            items.change("c", {"id": i, "name": f"item {i}", "qty": i})
            items.flush()
            time.sleep(0.3)
        producing.set()

    producer = threading.Thread(target=produce)
    producer.start()
    rebuild = subprocess.run([sys.executable, "-m", "kappa", "rebuild", "--pipeline", str(path), "--timeout", "420"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    producer.join()
    assert rebuild.returncode == 0, rebuild.stderr[-3000:]
    out = rebuild.stdout
    assert f"kappa rebuild of {name}: version 2" in out and "cut over: readers of" in out, out
    assert f"the job {name} of the previous version stopped" in out, out
    new_pid = int(re.search(r"started the job \S+: pid (\d+)", out).group(1))
    try:
        assert old.wait(30) == 0  # stopped by itself, cleanly, once its version was a previous one
        assert any("which is previous" in m for m in job_process.messages(old))
        assert [(v.number, v.state) for v in versions.listing(settings, namespace, name)] == \
            [(1, "previous"), (2, "active")]

        # The second job goes on as the live one: what arrives now reaches readers, with the new transform.
        items.change("u", {"id": 0, "name": "item 0 after", "qty": 1})
        items.change("c", {"id": 500, "name": "item 500", "qty": 5})
        items.flush()
        expected = {(i,) for i in [*range(30), *range(100, 130), 500] if i not in (4, 8)}

        def switched():
            served = cdc_items.served(settings, namespace, table)
            return all(set(rows) == expected and all(r["name"] == r["name"].upper() for r in rows.values())
                       for rows in served.values()) and served["postgres"][(0,)]["name"] == "ITEM 0 AFTER"
        wait_for(switched, 120, "the new version's job writing what arrives after the cut-over")

        # The raw archive went on in the second job, where the first left it: every record once.
        total = _end_offsets(kafka_bootstrap, topic)
        archived = wait_for(lambda: (lambda rows: rows if len(rows) >= total else None)(
            _archived(settings, namespace, topic)), 120, "the archive to reach the topic's end")
        assert len(archived) == len(set(archived)) == total

        # One process per query: a second one of the new job is refused before it starts Spark.
        second = subprocess.run([sys.executable, "-m", "kappa", "run", str(path)], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2 and f"job {name}__v2 already runs" in second.stdout + second.stderr
    finally:
        os.kill(new_pid, signal.SIGTERM)
        wait_for(lambda: not _alive(new_pid), 90, "the new job to stop")
        if old.poll() is None:
            old.kill()


def _count(settings, namespace: str) -> int | None:
    conn = psycopg2.connect(settings.postgres.dsn())
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f"{namespace}.items_current",))
            if cur.fetchone()[0] is None:
                return None  # the job has not made its tables yet
            cur.execute(f"SELECT count(*) FROM {namespace}.items_current")
            return cur.fetchone()[0]
    finally:
        conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_a_rebuild_step_before_its_start_says_which_step_comes_first(settings, unique, tmp_path):
    """The steps the kappa_rebuild DAG runs one by one refuse to run out of order, naming the first."""
    path = tmp_path / f"items-{unique}.toml"
    _write_pipeline(path, f"items-{unique}", f"it.{unique}.cdc.items", f"kappa_{unique}", tmp_path / "checkpoints",
                    upper=False)
    for step in ("check", "cut-over"):
        early = subprocess.run([sys.executable, "-m", "kappa", "rebuild", "--pipeline", str(path), "--step", step],
                               cwd=REPO, capture_output=True, text=True, timeout=120)
        assert early.returncode == 1 and "has no shadow version: start the rebuild first (kappa rebuild --step start)" \
            in early.stderr, (step, early.stderr[-2000:])
