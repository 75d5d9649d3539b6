"""The orders pipeline on a Spark standalone cluster (``python -m stack up spark``): a master and
two workers in their own processes, so the executors, their Python workers and the sinks run in
other JVMs than the driver, and the checkpoints are on S3. A live job and a replay there write
every store equal to a ``local[2]`` run of the same events, and a worker SIGKILLed with its
executor in the middle of a batch costs nothing: Spark runs the lost tasks again on the other one.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from stack import lifecycle, ports
from stack.spark_cluster import MASTER_URL, SparkWorker1
from streaming.jobs.runner import JobRunner
from streaming.plan import JobConfig
from tests.conftest import REPO
from tests.integration import job_process, sink_contents
from tests.integration.kafka_topics import wait_for
from tests.integration.serving_tables import ORDERS, ORDERS_JOB, customers_dimension

from bench.streaming import OrderProducer  # noqa: E402  (the bench's producer: new keys, valid events)

EVENTS = 12_000


@pytest.fixture
def cluster() -> str:
    failures = lifecycle.up(["spark"], echo=lambda *_: None)
    assert not failures, "\n".join(failures)
    return MASTER_URL


def _applications() -> list[dict]:
    state = requests.get(f"http://127.0.0.1:{ports.SPARK_MASTER_UI}/json/", timeout=10).json()
    return state.get("activeapps", []) + state.get("completedapps", [])


def test_a_live_job_and_a_replay_on_a_cluster_equal_a_local_run_and_a_lost_worker_costs_nothing(
        cluster, spark, settings, kafka_bootstrap, registry_url, cassandra_settings, clickhouse_settings,
        postgres_settings, s3_settings, unique, tmp_path):
    topic = f"it.{unique}.cluster.orders"
    producer = OrderProducer(topic)
    producer.send(EVENTS)
    producer.flush()
    live, replayed, local = (f"{what}_{unique}" for what in ("cl_live", "cl_replay", "cl_local"))
    for namespace in (live, replayed, local):
        customers_dimension(settings, namespace)
    on_cluster = {"KAPPA_SPARK__MASTER": cluster, "KAPPA_SPARK__SHARED_JARS": "true"}
    checkpoints = f"s3a://{settings.s3.lake_bucket}/checkpoints/{unique}"

    # The live job, its batches cut small so that a worker dies in the middle of one.
    config = {"name": f"cl-{unique}", "topic": topic, "namespace": live, "max_offsets_per_trigger": 3_000,
              "checkpoint_dir": checkpoints}
    job = job_process.start(config, tmp_path, "cluster", available_now=True, env=on_cluster)
    try:
        wait_for(lambda: any(m.startswith("batch 0:") for m in job_process.messages(job)) or job.poll() is not None,
                 300, "the job's first batch on the cluster")
        assert job.poll() is None, "\n".join(job_process.log_lines(job)[-30:])
        worker = SparkWorker1().pid()
        os.killpg(os.getpgid(worker), signal.SIGKILL)  # the worker and its executor: a machine lost
        assert job.wait(600) == 0, "\n".join(job_process.log_lines(job)[-30:])
    finally:
        if job.poll() is None:
            job.kill()
    assert any(m.startswith("Lost executor") for m in job_process.messages(job))  # Spark saw the worker go
    assert job_process.not_json(job.log_path.read_text(errors="replace")) == []
    assert any(app["name"] == config["name"] for app in _applications())  # it ran on the cluster

    # A replay of the same range, on the cluster too (the killed worker back).
    assert not lifecycle.up(["spark"], echo=lambda *_: None)
    path = job_process.pipeline_file({**config, "name": f"clr-{unique}", "namespace": replayed}, tmp_path, "replay")
    replay = subprocess.run([sys.executable, "-m", "kappa", "backfill", "--pipeline", str(path), "--from", "earliest",
                             "--to", "latest", "--sinks", "postgres,clickhouse,cassandra,lake"],
                            cwd=REPO, env={**os.environ, **on_cluster}, capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-3000:]

    # The same events on local[2], in this process.
    JobRunner(ORDERS_JOB, JobConfig(name=f"cll-{unique}", topic=topic, namespace=local,
                                    checkpoint_dir=str(tmp_path / "checkpoints")), settings, spark).run(available_now=True)
    expected = sink_contents.all_sinks(settings, local, ORDERS)
    assert len(expected["postgres"]) == EVENTS
    for namespace in (live, replayed):
        got = sink_contents.all_sinks(settings, namespace, ORDERS)
        for store in ("postgres", "clickhouse", "cassandra", "lake"):
            assert got[store] == expected[store], f"{store} of {namespace} differs from the local[2] run"
    changes = [r["event_id"] for r in sink_contents.lake_changes(settings, live, ORDERS)]
    assert len(changes) == len(set(changes)) == EVENTS  # the lost worker's tasks were neither lost nor doubled
