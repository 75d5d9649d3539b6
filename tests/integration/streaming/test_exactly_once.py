"""Exactly-once effect: a job SIGKILLed mid-batch (after some sinks wrote, after some partitions, after
a batch was served and staged but before the lake took it, after the lake's commit) and restarted
leaves every sink exactly as an uninterrupted run over the same input, compared row for row."""
import random
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import clickhouse_connect
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import contracts
from schemas.serde import AvroSerializer

from streaming.jobs.runner import JobRunner
from streaming.plan import JobConfig
from streaming.stores import lake
from tests.integration import job_process, sink_contents
from tests.integration.serving_tables import ORDERS, ORDERS_JOB, customers_dimension

REPO = Path(__file__).resolve().parents[3]
T0 = int(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc).timestamp() * 1000)


def produce_orders(bootstrap, registry_url, topic, count=3000):
    registry = SchemaRegistryClient({"url": registry_url})
    value = AvroSerializer(registry, f"{topic}-value", contracts.contract("shop.api.orders").schema)
    key = AvroSerializer(registry, f"{topic}-key", '"string"')
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    rng = random.Random(11)
    for i in range(count):
        order_id = rng.randrange(400)
        updated = T0 + i * 1000
        producer.produce(topic, key=key(str(order_id)), value=value({
            "event_id": f"o{order_id}-{updated}", "event_time": updated,
            "source": {"connector": "test", "position": str(i), "ts_ms": updated},
            "order_id": order_id, "customer_id": order_id % 23, "status": rng.choice(["NEW", "PAID", "SHIPPED"]),
            "amount": round(rng.uniform(1, 500), 2), "currency": "EUR", "updated_at": updated}))
    assert producer.flush(60) == 0


def lake_changes(settings, namespace: str) -> list[tuple]:
    return sorted((r["event_id"], r["_version"]) for r in sink_contents.lake_changes(settings, namespace, ORDERS))


def hourly(clickhouse_settings, namespace: str) -> list[tuple]:
    ch = clickhouse_connect.get_client(host=clickhouse_settings.host, port=clickhouse_settings.port)
    return ch.query(f"SELECT customer_id, window_start, sum(events), round(sum(amount), 6) FROM "
                    f"{namespace}.customer_hourly GROUP BY customer_id, window_start ORDER BY 1, 2").result_rows


def run_job_process(config: dict, tmp_path: Path, log_name: str, available_now: bool = True
                    ) -> subprocess.CompletedProcess:
    path = job_process.pipeline_file(config, tmp_path, log_name)
    return subprocess.run([sys.executable, "-m", "kappa", "run", str(path),
                           *(["--available-now"] if available_now else [])],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_sigkill_after_some_sinks_then_restart_equals_an_uninterrupted_run(
        spark, settings, kafka_bootstrap, registry_url, cassandra_settings, clickhouse_settings, unique, tmp_path):
    topic = f"it.{unique}.eos.orders"
    produce_orders(kafka_bootstrap, registry_url, topic)
    common = {"topic": topic, "max_offsets_per_trigger": 500, "checkpoint_dir": str(tmp_path / "checkpoints")}

    # A: killed once batch 1 was served and staged, before the lake took it (the lake's next commit is
    # minutes away), again right after Cassandra wrote batch 2 (the other stores may not have), again
    # right after the lake's commit that took batch 3 (its staged changes not yet deleted), then
    # restarted without the fault.
    killed_config = {"name": f"eos-a-{unique}", "namespace": f"eos_a_{unique}", **common}
    customers_dimension(settings, killed_config["namespace"])
    served = run_job_process({**killed_config, "crash_after": "served:1", "lake_trigger_seconds": 600}, tmp_path,
                             "killed-served", available_now=False)
    assert served.returncode == -9, served.stderr[-3000:]
    served_ids = {row["event_id"] for row in sink_contents.postgres(settings, killed_config["namespace"], ORDERS).values()}
    assert served_ids - {event_id for event_id, _ in lake_changes(settings, killed_config["namespace"])}, \
        "the serving stores held nothing the lake lacked: the kill was not between serving and the lake"
    killed = run_job_process({**killed_config, "crash_after": "cassandra:2", "lake_trigger_seconds": 600}, tmp_path,
                             "killed", available_now=False)
    assert killed.returncode == -9, killed.stderr[-3000:]
    pg_after_kill = sink_contents.postgres(settings, killed_config["namespace"], ORDERS)
    # Killed again right after the Delta commit that took batch 3: the restart finds the staged changes
    # of batches the lake holds, and deletes them instead of appending them again.
    again = run_job_process({**killed_config, "crash_after": "lake:3"}, tmp_path, "killed-again")
    assert again.returncode == -9, again.stderr[-3000:]
    restarted = run_job_process(killed_config, tmp_path, "restarted")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "Restarting the query" not in restarted.stderr, restarted.stderr[-3000:]  # no batch failed
    assert job_process.not_json(restarted.stderr) == []  # Spark's lines too: one JSON object each

    # B: the same input, uninterrupted.
    clean = JobConfig(name=f"eos-b-{unique}", namespace=f"eos_b_{unique}", **common)
    customers_dimension(settings, clean.namespace)
    JobRunner(ORDERS_JOB, clean, settings, spark).run(available_now=True)

    a = sink_contents.all_sinks(settings, killed_config["namespace"], ORDERS)
    b = sink_contents.all_sinks(settings, clean.namespace, ORDERS)
    assert len(b["postgres"]) > 300
    assert len(pg_after_kill) < len(b["postgres"]) or pg_after_kill != b["postgres"]  # the kill did interrupt
    for sink in ("lake", "clickhouse", "cassandra", "postgres"):
        assert a[sink] == b[sink], f"{sink} differs after the kill and restart"
    # Every change once in the lake (batch 2 rewrote its own objects, nothing more), and nothing left staged.
    changes_a = lake_changes(settings, killed_config["namespace"])
    assert changes_a == lake_changes(settings, clean.namespace) and len(changes_a) == len(set(changes_a))
    assert lake.staged_batches(settings, killed_config["namespace"], killed_config["name"]) == []
    # Summed features count batch 2 once: ClickHouse dropped its replayed insert by token.
    assert hourly(clickhouse_settings, killed_config["namespace"]) == hourly(clickhouse_settings, clean.namespace)
    assert sum(r[2] for r in hourly(clickhouse_settings, clean.namespace)) == 3000


def delta_commits(spark, settings, namespace: str, table: str) -> list[tuple[str, int]]:
    """(txnAppId, txnVersion) of every commit in the table's Delta log."""
    log = spark.read.json(f"s3a://{settings.s3.lake_bucket}/{namespace}/{table}/_delta_log/*.json")
    if "txn" not in log.columns:
        return []
    return sorted((r.appId, r.version) for r in log.where("txn IS NOT NULL").select("txn.*").collect())


def test_sigkill_after_some_partitions_then_restart_equals_an_uninterrupted_run(
        spark, settings, kafka_bootstrap, registry_url, cassandra_settings, clickhouse_settings, unique, tmp_path):
    topic = f"it.{unique}.eosp.orders"
    produce_orders(kafka_bootstrap, registry_url, topic)
    common = {"topic": topic, "max_offsets_per_trigger": 1000, "sink_partitions": 4,
              "checkpoint_dir": str(tmp_path / "checkpoints")}

    # A: killed once partition 1 of batch 1 wrote all of its sinks (partitions 0, 2, 3 may or may not
    # have), then restarted without the fault.
    killed_config = {"name": f"eosp-a-{unique}", "namespace": f"eosp_a_{unique}", **common}
    customers_dimension(settings, killed_config["namespace"])
    killed = run_job_process({**killed_config, "crash_after": "partition:1:1"}, tmp_path, "killed")
    assert killed.returncode == -9, killed.stderr[-3000:]
    # The lake commits on its own clock (it may have taken any batch served before the kill): each once.
    commits_after_kill = [v for _, v in delta_commits(spark, settings, killed_config["namespace"], "orders")]
    assert commits_after_kill == sorted(set(commits_after_kill)), commits_after_kill
    restarted = run_job_process(killed_config, tmp_path, "restarted")
    assert restarted.returncode == 0, restarted.stderr[-3000:]

    clean = JobConfig(name=f"eosp-b-{unique}", namespace=f"eosp_b_{unique}", **common)
    customers_dimension(settings, clean.namespace)
    JobRunner(ORDERS_JOB, clean, settings, spark).run(available_now=True)

    a = sink_contents.all_sinks(settings, killed_config["namespace"], ORDERS)
    b = sink_contents.all_sinks(settings, clean.namespace, ORDERS)
    assert len(b["postgres"]) > 300
    for sink in ("lake", "clickhouse", "cassandra", "postgres"):
        assert a[sink] == b[sink], f"{sink} differs after the kill and restart"
    # The lake's history holds each commit's newest batch once, and the same changes as the clean run.
    commits = delta_commits(spark, settings, killed_config["namespace"], "orders")
    versions = [v for _, v in commits]
    assert versions and versions == sorted(set(versions)), commits
    assert {app for app, _ in commits} == {killed_config["name"]}
    changes_a = lake_changes(settings, killed_config["namespace"])
    assert changes_a == lake_changes(settings, clean.namespace) and len(changes_a) == len(set(changes_a))
    assert hourly(clickhouse_settings, killed_config["namespace"]) == hourly(clickhouse_settings, clean.namespace)
    assert sum(r[2] for r in hourly(clickhouse_settings, clean.namespace)) == 3000
