"""``kappa backfill`` in live mode on the real stack: a replay of the orders pipeline over a
range equals the live job's serving tables row for row; a rerun writes nothing new; bad input is
refused before anything is written."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import clickhouse_connect
import psycopg2
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

from batch_replay import ranges
from batch_replay.replay import Plan, replay
from schemas import contracts
from schemas.serde import AvroSerializer
from streaming import stores
from streaming.jobs import pipeline
from streaming.jobs.runner import JobRunner
from tests.integration import job_process, sink_contents, sqlite_store
from tests.integration.job_process import REPO
from tests.integration.serving_tables import ORDERS, customers_dimension

T0 = 1_796_000_000_000


def _create(kafka_bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)


def _publish(registry_url: str, kafka_bootstrap: str, topic: str, orders: list[tuple[int, int, str, float]]) -> None:
    """(order id, version, status, amount) per event: later versions update, a negative amount is invalid."""
    value = AvroSerializer(SchemaRegistryClient({"url": registry_url}), f"{topic}-value",
                           contracts.contract("shop.api.orders").schema)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for order_id, version, status, amount in orders:
        at = T0 + order_id * 1000 + version
        producer.produce(topic, key=str(order_id).encode(), value=value({
            "event_id": f"{topic}-{order_id}-{version}", "event_time": at,
            "source": {"connector": "test", "position": f"{order_id}.{version}", "ts_ms": at}, "order_id": order_id,
            "customer_id": order_id % 3, "status": status, "amount": amount, "currency": "EUR", "updated_at": at}))
    assert producer.flush(30) == 0


def _replay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kappa", "backfill", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def _clickhouse_count(settings, namespace: str, table: str = "orders") -> int:
    ch = settings.clickhouse
    client = clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password)
    return client.query(f"SELECT count() FROM {namespace}.{table}").result_rows[0][0]  # no FINAL: every row written


def _serving(settings, namespace: str) -> dict:
    return {"postgres": sink_contents.postgres(settings, namespace, ORDERS),
            "clickhouse": sink_contents.clickhouse(settings, namespace, ORDERS),
            "cassandra": sink_contents.cassandra(settings, namespace, ORDERS)}


def test_a_live_replay_equals_the_live_job_and_a_rerun_writes_nothing(spark, settings, kafka_bootstrap, registry_url,
                                                                      unique, tmp_path):
    topic, live_ns, replay_ns = f"it.{unique}.replay.orders", f"live_{unique}", f"replay_{unique}"
    _create(kafka_bootstrap, topic, 2)
    events = [(i, 1, "NEW", 10.0 + i) for i in range(30)] + [(i, 2, "PAID", 10.0 + i) for i in range(0, 30, 3)] + \
        [(100, 1, "NEW", -5.0), (101, 1, "NEW", -1.0)]  # two invalid: to the DLQ
    _publish(registry_url, kafka_bootstrap, topic, events)
    for namespace in (live_ns, replay_ns):
        customers_dimension(settings, namespace)

    live = pipeline.load(job_process.pipeline_file({"name": f"live-{unique}", "topic": topic, "namespace": live_ns,
                                                    "checkpoint_dir": str(tmp_path / "ck")}, tmp_path, "live"))
    JobRunner(live.definition(settings), live, settings, spark).run(available_now=True)
    replay_file = job_process.pipeline_file({"name": f"orders-{unique}", "topic": topic, "namespace": replay_ns},
                                            tmp_path, "replayed")

    plan = _replay("--pipeline", str(replay_file), "--from", "earliest", "--dry-run", "--chunk-events", "9")
    assert plan.returncode == 0, plan.stderr
    chunks = int(re.search(r"42 records in (\d+) chunks of at most 9", plan.stdout).group(1))
    assert chunks >= 5 and "nothing written" in plan.stdout
    assert f"writes {replay_ns}.orders in clickhouse, cassandra, postgres" in plan.stdout

    first = _replay("--pipeline", str(replay_file), "--from", "earliest", "--to", "latest", "--chunk-events", "9")
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"42 events in {chunks} chunks, 2 to the DLQ" in first.stdout, first.stdout
    assert _serving(settings, replay_ns) == _serving(settings, live_ns)  # row for row, versions included
    written = _clickhouse_count(settings, replay_ns)
    # The hourly sums are increments the live job already counted: a live replay adds none.
    assert _clickhouse_count(settings, live_ns, "customer_hourly") > 0
    assert _clickhouse_count(settings, replay_ns, "customer_hourly") == 0

    again = _replay("--pipeline", str(replay_file), "--from", "earliest", "--chunk-events", "9")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _clickhouse_count(settings, replay_ns) == written  # each chunk's token was seen: nothing new
    assert _serving(settings, replay_ns) == _serving(settings, live_ns)


def test_bad_input_is_refused_before_anything_is_written(settings, kafka_bootstrap, registry_url, unique, tmp_path):
    topic, namespace = f"it.{unique}.refuse.orders", f"refuse_{unique}"
    _create(kafka_bootstrap, topic, 1)
    _publish(registry_url, kafka_bootstrap, topic, [(i, 1, "NEW", 1.0) for i in range(6)])
    path = job_process.pipeline_file({"name": f"orders-{unique}", "topic": topic, "namespace": namespace}, tmp_path,
                                     "refuse")
    missing = job_process.pipeline_file({"name": f"orders-{unique}", "topic": f"{topic}.nothing",
                                         "namespace": namespace}, tmp_path, "missing")

    def refused(*args: str) -> str:
        result = _replay(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        return result.stderr

    assert "is not before TO" in refused("--pipeline", str(path), "--from", "2026-12-02", "--to", "2026-12-01")
    assert "unknown pipeline 'nosuch'" in refused("--pipeline", "nosuch", "--from", "earliest")
    assert f"topic {topic}.nothing does not exist" in refused("--pipeline", str(missing), "--from", "earliest")
    # Retention took the first records of partition 0: a range starting before them is refused.
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 1)]).values():
        future.result(30)
    time.sleep(0.5)
    message = refused("--pipeline", str(path), "--from", "2020-01-01")
    assert "no longer holds the start of the range" in message and "SOURCE=lake" in message
    conn = psycopg2.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:  # nothing was written, not even a table
        cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (namespace,))
        assert cur.fetchone()[0] == 0
    conn.close()


def test_a_range_kafka_no_longer_retains_replays_the_same_from_the_lake(spark, settings, kafka_bootstrap,
                                                                        registry_url, unique, tmp_path):
    topic, live_ns = f"it.{unique}.archive.orders", f"archived_{unique}"
    from_kafka, from_lake = f"from_kafka_{unique}", f"from_lake_{unique}"
    _create(kafka_bootstrap, topic, 2)
    _publish(registry_url, kafka_bootstrap, topic, [(i, 1, "NEW", 5.0 + i) for i in range(20)] +
             [(i, 2, "SHIPPED", 5.0 + i) for i in range(0, 20, 4)] + [(50, 1, "NEW", -3.0)])
    for namespace in (live_ns, from_kafka, from_lake):
        customers_dimension(settings, namespace)
    path = job_process.pipeline_file({"name": f"archived-{unique}", "topic": topic, "namespace": live_ns,
                                      "archive": True, "checkpoint_dir": str(tmp_path / "ck")}, tmp_path, "archived")
    live = pipeline.load(path)
    JobRunner(live.definition(settings), live, settings, spark).run(available_now=True)  # and its archiver

    kafka = _replay("--pipeline", str(path), "--from", "2020-01-01", "--namespace", from_kafka, "--chunk-events", "8")
    assert kafka.returncode == 0, kafka.stderr[-3000:]
    # Retention passes: Kafka no longer holds any of it.
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    ends = _high_watermarks(kafka_bootstrap, topic)
    for future in admin.delete_records([TopicPartition(topic, p, high) for p, high in ends.items()]).values():
        future.result(30)
    refused = _replay("--pipeline", str(path), "--from", "2020-01-01", "--namespace", from_lake)
    assert refused.returncode == 2 and "SOURCE=lake" in refused.stderr, refused.stderr

    lake = _replay("--pipeline", str(path), "--source", "lake", "--from", "2020-01-01", "--namespace", from_lake,
                   "--chunk-events", "8")
    assert lake.returncode == 0, lake.stderr[-3000:]
    assert "source lake" in lake.stdout and "26 events" in lake.stdout and "1 to the DLQ" in lake.stdout, lake.stdout
    assert _serving(settings, from_lake) == _serving(settings, from_kafka) == _serving(settings, live_ns)


def _high_watermarks(kafka_bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "tests-watermarks"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1)}
    finally:
        consumer.close()


def test_a_store_added_as_one_module_and_one_registry_line_is_written_by_the_job_and_a_replay(
        spark, settings, kafka_bootstrap, registry_url, unique, tmp_path, monkeypatch):
    """tests/integration/sqlite_store.py is a whole store; registering it is the only other change."""
    monkeypatch.setitem(stores.REGISTRY, "sqlite", "tests.integration.sqlite_store:SqliteStore")
    monkeypatch.setenv("KAPPA_SQLITE_STORE", str(tmp_path / "sqlite"))
    topic, live_ns, replay_ns = f"it.{unique}.sqlite.orders", f"sqlite_live_{unique}", f"sqlite_replay_{unique}"
    _create(kafka_bootstrap, topic, 2)
    _publish(registry_url, kafka_bootstrap, topic, [(i, 1, "NEW", 1.0 + i) for i in range(12)] +
             [(i, 2, "PAID", 1.0 + i) for i in range(0, 12, 4)] + [(99, 1, "NEW", -1.0)])
    for namespace in (live_ns, replay_ns):
        customers_dimension(settings, namespace)
    path = job_process.pipeline_file({"name": f"sqlite-{unique}", "topic": topic, "namespace": live_ns,
                                      "sinks": ["sqlite"], "checkpoint_dir": str(tmp_path / "ck")}, tmp_path, "sqlite")
    live = pipeline.load(path)
    JobRunner(live.definition(settings), live, settings, spark).run(available_now=True)
    written = sqlite_store.rows(tmp_path / "sqlite", live_ns, "orders")
    status = ORDERS.all_columns.index("status")  # the newest change per order; the invalid one went to the DLQ
    assert {row[0]: row[status] for row in written} == {i: "PAID" if i % 4 == 0 else "NEW" for i in range(12)}

    span = ranges.resolve(settings, topic, ranges.parse_bound("earliest"), ranges.parse_bound("latest"))
    summary = replay(Plan(pipeline.load(path, namespace=replay_ns), span, 5, 2, ("sqlite",)), settings, spark)
    assert summary.events == 16 and summary.rejected == 1
    assert sqlite_store.rows(tmp_path / "sqlite", replay_ns, "orders") == written
