"""Reference data is refreshed while the query runs: later micro-batches join with the new rows."""
import threading
from datetime import datetime, timezone

import psycopg2
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import contracts
from schemas.serde import AvroSerializer

from streaming.jobs.runner import JobConfig, JobRunner
from streaming.tables import ddl
from tests.integration.kafka_topics import wait_for
from tests.integration.serving_tables import CUSTOMERS, ORDERS_JOB

T0 = int(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc).timestamp() * 1000)


def test_a_running_job_picks_up_changed_reference_data(spark, settings, kafka_bootstrap, registry_url, unique,
                                                        tmp_path):
    namespace, topic = f"ref_{unique}", f"it.{unique}.ref.orders"
    ddl.postgres(settings, namespace, CUSTOMERS, "customers")  # the dimension, as the customers job makes it
    pg = psycopg2.connect(settings.postgres.dsn())
    pg.autocommit = True

    def set_segment(segment: str) -> None:
        with pg.cursor() as cur:
            cur.execute(f"INSERT INTO {namespace}.customers (customer_id, segment, country, _version) "
                        "VALUES (7, %s, 'GB', 1) ON CONFLICT (customer_id) DO UPDATE SET segment = excluded.segment",
                        (segment,))

    def segment_of(order_id: int):
        with pg.cursor() as cur:
            try:
                cur.execute(f"SELECT customer_segment FROM {namespace}.orders WHERE order_id = %s", (order_id,))
            except psycopg2.errors.UndefinedTable:  # the job creates its table when it starts
                return None
            row = cur.fetchone()
        return row[0] if row else None

    registry = SchemaRegistryClient({"url": registry_url})
    value = AvroSerializer(registry, f"{topic}-value", contracts.contract("shop.api.orders").schema)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def order(order_id: int) -> None:
        at = T0 + order_id
        producer.produce(topic, value=value({
            "event_id": f"ref-{order_id}", "event_time": at, "source": {"connector": "test", "position": "0", "ts_ms": at},
            "order_id": order_id, "customer_id": 7, "status": "NEW", "amount": 1.0, "currency": "EUR",
            "updated_at": at}))
        producer.flush(30)

    set_segment("gold")
    order(1)
    config = JobConfig(name=f"ref-{unique}", topic=topic, namespace=namespace, sinks=["postgres"],
                       trigger_seconds=0.2, reference_refresh_s=0, checkpoint_dir=str(tmp_path / "checkpoints"))
    runner = JobRunner(ORDERS_JOB, config, settings, spark)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: segment_of(1) == "gold", 90, "order 1 enriched with the first segment")
        set_segment("platinum")
        # The runner refreshes after each batch, and a batch is planned with the data of the last
        # refresh before it: once a batch started after the change has finished, the next sees it.
        order(2)
        wait_for(lambda: segment_of(2) is not None, 60, "order 2")
        order(3)
        wait_for(lambda: segment_of(3) is not None, 60, "order 3")
        assert segment_of(3) == "platinum"
        assert segment_of(1) == "gold"  # written before the change, and not rewritten
    finally:
        runner.stop()
        thread.join(60)
        pg.close()
