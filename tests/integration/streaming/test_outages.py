"""A sink's server going away under load: the job retries, restarts its query from the checkpoint by
itself when the server is back, and ends with every sink equal to an uninterrupted run."""
import signal
import threading
import time

import clickhouse_connect
import requests

from stack import lifecycle

from streaming.jobs.runner import JobRunner
from streaming.plan import JobConfig
from tests.integration.serving_tables import ORDERS, ORDERS_JOB, customers_dimension
from tests.integration import job_process, sink_contents
from tests.integration.kafka_topics import wait_for

from bench.streaming import OrderProducer  # noqa: E402
from tests.conftest import free_port


RATE = 250         # events/s while the servers come and go
OUTAGE_S = 8       # longer than the job's retries of a partition write (sink_retry_attempts = 3: 1.5 s)


def test_cassandra_clickhouse_and_postgres_outages_under_load(
        spark, settings, kafka_bootstrap, registry_url, cassandra_settings, clickhouse_settings, postgres_settings,
        unique, tmp_path):
    topic = f"it.{unique}.outage.orders"
    producer = OrderProducer(topic)
    producer.send(2000)
    producer.flush()
    namespace = f"out_a_{unique}"
    customers_dimension(settings, namespace)
    config = {"name": f"out-a-{unique}", "topic": topic, "namespace": namespace, "trigger_seconds": 0.5,
              "lake_trigger_seconds": 2,
              "max_offsets_per_trigger": 5000, "checkpoint_dir": str(tmp_path / "checkpoints"),
              "reference_refresh_s": 3600, "sink_retry_attempts": 3, "restart_backoff_s": 2.0, "max_restart_backoff_s": 8.0,
              "max_restarts": 30, "metrics_port": free_port()}
    job = job_process.start(config, tmp_path, "job")
    stop = threading.Event()
    readiness: list[tuple[int, str]] = []  # what a readiness probe saw, every quarter second
    probing = threading.Event()

    def probe():
        while not probing.wait(0.25):
            try:
                answer = requests.get(f"http://127.0.0.1:{config['metrics_port']}/readyz", timeout=2)
                readiness.append((answer.status_code, answer.text))
            except requests.RequestException:
                pass  # not serving yet

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()

    def load():
        while not stop.is_set():
            producer.send(RATE // 10)
            time.sleep(0.1)
        producer.flush()

    feeder = threading.Thread(target=load, daemon=True)
    try:
        wait_for(lambda: any(m.startswith("batch ") for m in job_process.messages(job)) or job.poll() is not None,
                 240, "the job's first batch")
        feeder.start()
        for service in ("cassandra", "clickhouse", "postgres"):
            batches = len([m for m in job_process.messages(job) if m.startswith("batch ")])
            wait_for(lambda: len([m for m in job_process.messages(job) if m.startswith("batch ")]) > batches + 2,
                     240, f"batches before stopping {service}")
            lifecycle.down([service], echo=lambda *_: None)
            time.sleep(OUTAGE_S)
            assert job.poll() is None, f"the job exited while {service} was down:\n" + "\n".join(job_process.log_lines(job)[-20:])
            assert not lifecycle.up([service], echo=lambda *_: None), f"{service} did not come back"
        stop.set()
        feeder.join(60)
        produced = producer.next_id
        wait_for(lambda: sink_contents.key_counts(settings, namespace, ORDERS) == {
            "postgres": produced, "clickhouse": produced, "cassandra": produced, "lake": produced},
            300, "the job to catch up after the outages", interval=3)
        assert job.poll() is None  # it carried on by itself: the same process all along
        assert readiness[-1][0] == 200, readiness[-1]  # ready again once the servers are back
        job.send_signal(signal.SIGTERM)
        assert job.wait(120) == 0
    finally:
        stop.set()
        probing.set()
        if job.poll() is None:
            job.kill()
        for service in ("cassandra", "clickhouse", "postgres"):
            lifecycle.up([service], echo=lambda *_: None)
    said = job_process.messages(job)
    # Outages of three stores, and still every line the job wrote (Spark's and the JVM's included)
    # is one JSON object: a retry is a line that says why and what happens next, not a trace.
    assert job_process.not_json(job.log_path.read_text(errors="replace")) == []
    restarts = [m for m in said if "Restarting the query from its checkpoint" in m]
    assert restarts, "no batch failed: the outages were not felt"
    assert any("cassandra at" in m for m in restarts), restarts  # the message names the server and address
    unready = [body for status, body in readiness if status == 503 and body != "starting\n"]
    assert unready and all(body.startswith("restarting in") for body in unready), readiness[-5:]

    clean = JobConfig(name=f"out-b-{unique}", topic=topic, namespace=f"out_b_{unique}", max_offsets_per_trigger=50_000,
                      checkpoint_dir=str(tmp_path / "checkpoints"))
    customers_dimension(settings, clean.namespace)
    JobRunner(ORDERS_JOB, clean, settings, spark).run(available_now=True)
    a = sink_contents.all_sinks(settings, namespace, ORDERS)
    b = sink_contents.all_sinks(settings, clean.namespace, ORDERS)
    for sink in ("lake", "clickhouse", "cassandra", "postgres"):
        assert a[sink] == b[sink], f"{sink} differs from an uninterrupted run"
    changes_a = sorted(r["event_id"] for r in sink_contents.lake_changes(settings, namespace, ORDERS))
    assert len(changes_a) == len(set(changes_a)) == produced  # every change once in the lake
    ch = clickhouse_connect.get_client(host=clickhouse_settings.host, port=clickhouse_settings.port)
    total = ch.query(f"SELECT sum(events) FROM {namespace}.customer_hourly").result_rows[0][0]
    assert total == produced  # hourly features counted each event once
