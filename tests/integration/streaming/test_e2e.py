"""The streaming jobs end to end on the real servers: CDC customers and API orders into all four sinks."""
import json
import threading
from datetime import datetime, timezone

import clickhouse_connect
import psycopg2
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.cdc.connector import CdcConfig, CdcConnector
from connectors.runtime import StopFlag
from schemas import contracts
from schemas.serde import AvroSerializer
from streaming import decode

from streaming.jobs.runner import JobRunner
from streaming.plan import JobConfig
from tests.integration.serving_tables import CUSTOMERS, CUSTOMERS_JOB, ORDERS_JOB, ORDERS_WITH_CHANNEL
from tests.integration import sink_contents
from tests.integration.kafka_topics import read_topic, wait_for

T0 = int(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc).timestamp() * 1000)


def order_v2_schema() -> str:
    schema = json.loads(contracts.contract("shop.api.orders").schema)
    schema["fields"].append({"name": "channel", "type": "string", "default": "web", "doc": "Sales channel."})
    return json.dumps(schema)


def order_event(order_id, customer_id, status, amount, updated_at, currency="EUR", **extra):
    return {"event_id": f"order-{order_id}-{updated_at}", "event_time": updated_at,
            "source": {"connector": "test", "position": str(updated_at), "ts_ms": updated_at},
            "order_id": order_id, "customer_id": customer_id, "status": status, "amount": amount,
            "currency": currency, "updated_at": updated_at, **extra}


def run_job(spark, settings, job, name, topic, namespace, tmp_path, **overrides):
    config = JobConfig(name=name, topic=topic, namespace=namespace, checkpoint_dir=str(tmp_path / "checkpoints"),
                       max_offsets_per_trigger=overrides.pop("max_offsets_per_trigger", 1000), **overrides)
    JobRunner(job, config, settings, spark).run(available_now=True)


@pytest.fixture
def source_table(postgres_settings, unique):
    conn = psycopg2.connect(postgres_settings.dsn())
    conn.autocommit = True
    table = f"src_customers_{unique}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE public.{table} (customer_id bigint PRIMARY KEY, name text, segment text, "
                    f"country text, updated_at timestamptz NOT NULL)")
        cur.execute(f"INSERT INTO public.{table} VALUES "
                    "(1, 'Ada', 'gold', 'gb', '2026-11-26 08:00:00.001+00'), (2, 'Bob', 'silver', 'de', '2026-11-26 08:00:00.002+00'),"
                    "(3, 'Cy', 'bronze', 'fr', '2026-11-26 08:00:00.003+00'), (4, 'Di', 'gold', 'nl', '2026-11-26 08:00:00.004+00'),"
                    "(5, 'Ed', 'silver', 'es', '2026-11-26 08:00:00.005+00')")
    yield conn, table
    name = f"e2e-{unique}"
    with conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                    (f"kappa_{name}".replace("-", "_"),))
        cur.execute(f"DROP PUBLICATION IF EXISTS kappa_{name.replace('-', '_')}")
        cur.execute(f"DROP TABLE public.{table}")
    conn.close()


def test_cdc_and_api_events_reach_all_four_sinks_identically(
        spark, settings, source_table, kafka_bootstrap, registry_url, unique, tmp_path, monkeypatch):
    namespace = f"it_{unique}"
    conn, table = source_table

    # --- customers: the real CDC connector, then the customers job -----------------------------
    prefix = f"it.{unique}.cdc"
    cdc_topic = f"{prefix}.{table}"
    stop = StopFlag()
    connector = CdcConnector(CdcConfig(name=f"e2e-{unique}", tables=[f"public.{table}"], topic_prefix=prefix,
                                       commit_interval_s=0.2, heartbeat_interval_s=1), settings, stop)
    thread = threading.Thread(target=connector.run, daemon=True)
    thread.start()
    wait_for(lambda: len(read_topic(kafka_bootstrap, registry_url, cdc_topic)) >= 5, 60, "the snapshot")
    with conn.cursor() as cur:
        cur.execute(f"UPDATE public.{table} SET segment = 'gold', updated_at = '2026-11-26 08:30:00.000+00' WHERE customer_id = 2")
        cur.execute(f"DELETE FROM public.{table} WHERE customer_id = 5")
        cur.execute(f"INSERT INTO public.{table} VALUES (6, 'Flo', 'bronze', 'it', '2026-11-26 08:40:00.000+00')")
    wait_for(lambda: len(read_topic(kafka_bootstrap, registry_url, cdc_topic)) >= 9, 60, "the changes")  # + tombstone
    stop.set()
    thread.join(30)
    run_job(spark, settings, CUSTOMERS_JOB, f"customers-{unique}", cdc_topic, namespace, tmp_path)

    customer_rows = sink_contents.all_sinks(settings, namespace, CUSTOMERS)
    for sink, rows in customer_rows.items():
        assert sorted(k[0] for k in rows) == [1, 2, 3, 4, 6], sink       # 5 was deleted upstream
        assert rows[(2,)]["segment"] == "gold" and rows[(6,)]["country"] == "IT", sink
    assert customer_rows["postgres"] == customer_rows["clickhouse"] == customer_rows["cassandra"] == customer_rows["lake"]
    # The delete is a tombstone where the store keeps one, and a change in the lake.
    pg = psycopg2.connect(settings.postgres.dsn())
    with pg.cursor() as cur:
        cur.execute(f"SELECT _deleted FROM {namespace}.customers WHERE customer_id = 5")
        assert cur.fetchone() == (True,)
        cur.execute(f"SELECT count(*) FROM {namespace}.customers_current WHERE customer_id = 5")
        assert cur.fetchone() == (0,)
    pg.close()
    lake_rows = sink_contents.lake_changes(settings, namespace, CUSTOMERS)
    changes_of_5 = [r for r in lake_rows if r["customer_id"] == 5]
    assert sorted(r["_deleted"] for r in changes_of_5) == [False, True]
    # The lake is readable by Spark too (a Delta table on s3a://, partitioned by event_date).
    from_spark = spark.read.format("delta").load(f"s3a://{settings.s3.lake_bucket}/{namespace}/customers")
    assert from_spark.count() == len(lake_rows) and "event_date" in from_spark.columns

    # --- orders: API events, v1 then an evolved v2, invalid records, a duplicate ---------------
    topic = f"it.{unique}.orders"
    registry = SchemaRegistryClient({"url": registry_url})
    v1 = AvroSerializer(registry, f"{topic}-value", contracts.contract("shop.api.orders").schema)
    key = AvroSerializer(registry, f"{topic}-key", '"string"')
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    expected = {}

    def send(serializer, event, raw=None):
        producer.produce(topic, key=key(str(event["order_id"])) if event else None, value=raw or serializer(event))
        if event and event["amount"] >= 0 and event["currency"] == event["currency"].upper().strip()[:3]:
            expected[event["order_id"]] = event

    for i in range(1, 21):
        send(v1, order_event(i, customer_id=i % 7, status="NEW", amount=10.0 * i, updated_at=T0 + i))
    send(v1, order_event(3, 3, "PAID", 30.0, T0 + 10_000))
    duplicate = order_event(4, 4, "SHIPPED", 40.0, T0 + 20_000)
    send(v1, duplicate)
    send(v1, duplicate)                                                       # a connector's re-send
    send(v1, order_event(90, 1, "NEW", -5.0, T0 + 5))                         # breaks amount >= 0
    send(v1, order_event(91, 1, "NEW", 5.0, T0 + 6, currency="EURO"))         # breaks the currency code
    producer.produce(topic, value=b"\x07not avro at all")                     # not Confluent-framed
    producer.flush(30)
    run_job(spark, settings, ORDERS_JOB, f"orders-{unique}", topic, namespace, tmp_path)

    # v2 appears after the job built its decoder: the batch is rerun with the refreshed ids.
    v2 = AvroSerializer(registry, f"{topic}-value", order_v2_schema())
    for i in range(21, 26):
        send(v2, order_event(i, i % 7, "NEW", 10.0 * i, T0 + i, channel="app"))
    send(v2, order_event(1, 1, "PAID", 11.0, T0 + 30_000, channel="app"))
    producer.flush(30)
    real = decode.Decoder.from_registry
    calls = []

    def stale_first(registry_, topic_, extra_ids=()):
        fresh = real(registry_, topic_, extra_ids)
        calls.append(fresh)
        if len(calls) == 1:  # as if built just before v2 was registered
            old = {k: v for k, v in fresh.writer_schemas.items() if k != v2.schema_id}
            return decode.Decoder(fresh.subject, old[max(old)], old)
        return fresh

    monkeypatch.setattr(decode.Decoder, "from_registry", staticmethod(stale_first))
    run_job(spark, settings, ORDERS_JOB, f"orders-{unique}", topic, namespace, tmp_path)
    assert len(calls) == 2  # refreshed once

    order_rows = sink_contents.all_sinks(settings, namespace, ORDERS_WITH_CHANNEL)
    assert order_rows["postgres"] == order_rows["clickhouse"] == order_rows["cassandra"] == order_rows["lake"]
    rows = order_rows["postgres"]
    assert sorted(k[0] for k in rows) == sorted(expected)
    for order_id, event in expected.items():
        row = rows[(order_id,)]
        assert (row["status"], row["amount"], row["event_id"]) == (event["status"], event["amount"], event["event_id"])
        assert row["channel"] == event.get("channel", None if order_id <= 20 else "web")
    assert rows[(1,)]["channel"] == "app" and rows[(7,)]["channel"] is None
    # Enriched from the customers dimension (customer 5 was deleted, customer 0 never existed).
    assert rows[(2,)]["customer_segment"] == "gold" and rows[(2,)]["customer_country"] == "DE"
    assert rows[(5,)]["customer_segment"] is None and rows[(7,)]["customer_segment"] is None

    dead = read_topic(kafka_bootstrap, registry_url, f"{topic}.dlq", decode=False)
    reasons = sorted(r["headers"]["error"].decode() for r in dead)
    assert len(reasons) == 3, reasons
    assert reasons[0].startswith("not Confluent-framed Avro")
    assert "rule failed: amount in 0..1000000" in reasons and "rule failed: currency matches ^[A-Z]{3}$" in reasons

    # The listener exported the queries' progress (batches, rows, offsets behind latest).
    from prometheus_client import REGISTRY
    query = f"orders-{unique}"
    wait_for(lambda: (REGISTRY.get_sample_value("kappa_streaming_batches_total", {"pipeline": query}) or 0) >= 2, 30,
             "the listener's metrics")
    assert REGISTRY.get_sample_value("kappa_streaming_input_rows_total", {"pipeline": query, "topic": topic}) >= 28
    for partition in range(3):
        behind = REGISTRY.get_sample_value("kappa_streaming_offsets_behind_latest",
                                           {"pipeline": query, "topic": topic, "partition": str(partition)})
        assert behind == 0  # caught up
    # What the executors wrote, summed on the driver: every sink, and its write time per batch.
    for sink in ("clickhouse", "cassandra", "postgres"):
        assert REGISTRY.get_sample_value("kappa_streaming_rows_written_total", {"pipeline": query, "sink": sink}) >= 1
        assert REGISTRY.get_sample_value("kappa_streaming_sink_write_seconds_count", {"pipeline": query, "sink": sink}) >= 1

    # Hourly features: every accepted order event counted once (the duplicate is dropped).
    ch = clickhouse_connect.get_client(host=settings.clickhouse.host, port=settings.clickhouse.port)
    total_events = ch.query(f"SELECT sum(events) FROM {namespace}.customer_hourly FINAL").result_rows[0][0]
    assert total_events == 20 + 1 + 1 + 5 + 1
