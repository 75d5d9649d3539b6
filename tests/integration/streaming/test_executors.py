"""The sinks write from the executors: a 200K-event batch passes a driver that may receive 1 MiB of
results, and SIGTERM lets the batch in flight finish before the process exits 0."""
import signal
import time

from tests.integration import job_process, sink_contents
from tests.integration.serving_tables import ORDERS, customers_dimension
from tests.integration.kafka_topics import wait_for

from bench.streaming import OrderProducer  # noqa: E402  (the bench's producer: new keys, valid events)


def test_a_200k_batch_reaches_every_sink_with_a_1m_driver_result_limit_and_sigterm_is_clean(
        settings, kafka_bootstrap, registry_url, cassandra_settings, clickhouse_settings, postgres_settings,
        unique, tmp_path):
    topic = f"it.{unique}.big.orders"
    producer = OrderProducer(topic)  # creates the topic with 4 partitions
    producer.send(220_000)
    producer.flush()
    namespace = f"big_{unique}"
    customers_dimension(settings, namespace)
    config = {"name": f"big-{unique}", "topic": topic, "namespace": namespace, "max_offsets_per_trigger": 200_000,
              "trigger_seconds": 0.5, "checkpoint_dir": str(tmp_path / "checkpoints")}
    # A collected batch of 200K orders is ~30 MB: with a 1 MiB limit any collect() would fail the job.
    job = job_process.start(config, tmp_path, "big", spark_conf={"spark.driver.maxResultSize": "1m"})
    try:
        first = wait_for(lambda: [m for m in job_process.messages(job) if m.startswith("batch 0:")] or job.poll(),
                         420, "the 200K-event batch")
        assert job.poll() is None, "\n".join(job_process.log_lines(job)[-30:])
        # maxOffsetsPerTrigger splits 200K over the topic's 4 partitions by their backlog: within a few
        rows = int(first[0].split()[2])
        assert 199_000 <= rows <= 200_000, first
        time.sleep(1.0)  # batch 1 (the other 20K) is in flight now
        job.send_signal(signal.SIGTERM)
        assert job.wait(180) == 0, "\n".join(job_process.log_lines(job)[-30:])
    finally:
        if job.poll() is None:
            job.kill()
    lines = job_process.log_lines(job)
    assert not any("Traceback" in line for line in lines), "\n".join(lines[-30:])
    said = job_process.messages(job)
    assert any(m.startswith("batch 1:") and f"{220_000 - rows} rows" in m for m in said), said[-5:]  # finished, not cut off
    assert said[-1] == "stopped"
    assert sink_contents.key_counts(settings, namespace, ORDERS) == {
        "postgres": 220_000, "clickhouse": 220_000, "cassandra": 220_000, "lake": 220_000}
