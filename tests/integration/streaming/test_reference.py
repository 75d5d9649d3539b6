"""Reference data is cached: read once per refresh, refreshed while the query runs (later micro-batches
join with the new rows), and served from the cache while its database is down."""
import threading
import time
from datetime import datetime, timezone

import clickhouse_connect
import psycopg2
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import contracts
from schemas.serde import AvroSerializer
from stack import lifecycle
from streaming.jobs import pipeline
from streaming.jobs.runner import HOLD_CHECK_S, JobRunner
from streaming.plan import JobConfig
from streaming import stores
from tests.integration.kafka_topics import wait_for
from tests.integration.serving_tables import CUSTOMERS, ORDERS_JOB

T0 = int(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc).timestamp() * 1000)


def _order_sender(registry_url: str, kafka_bootstrap: str, topic: str):
    """order(id): one valid order of customer 7 on ``topic``, flushed."""
    value = AvroSerializer(SchemaRegistryClient({"url": registry_url}), f"{topic}-value",
                           contracts.contract("shop.api.orders").schema)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def order(order_id: int) -> None:
        at = T0 + order_id
        producer.produce(topic, value=value({
            "event_id": f"{topic}-{order_id}", "event_time": at,
            "source": {"connector": "test", "position": "0", "ts_ms": at}, "order_id": order_id,
            "customer_id": 7, "status": "NEW", "amount": 1.0, "currency": "EUR", "updated_at": at}))
        producer.flush(30)

    return order


def test_a_running_job_picks_up_changed_reference_data(spark, settings, kafka_bootstrap, registry_url, unique,
                                                        tmp_path):
    namespace, topic = f"ref_{unique}", f"it.{unique}.ref.orders"
    stores.get("postgres").ensure_table(settings, namespace, CUSTOMERS, "customers")  # the dimension, as the customers job makes it
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

    order = _order_sender(registry_url, kafka_bootstrap, topic)

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


def test_reference_data_is_read_once_per_refresh_and_served_from_the_cache_while_its_database_is_down(
        spark, settings, kafka_bootstrap, registry_url, clickhouse_settings, unique, tmp_path):
    namespace, topic = f"refc_{unique}", f"it.{unique}.refc.orders"
    stores.get("postgres").ensure_table(settings, namespace, CUSTOMERS, "customers")
    pg = psycopg2.connect(settings.postgres.dsn())
    pg.autocommit = True
    with pg.cursor() as cur:
        cur.execute(f"INSERT INTO {namespace}.customers (customer_id, segment, country, _version) VALUES (7, 'gold', 'GB', 1)")

    def reads() -> int:
        """Scans of the dimension's table so far, by anyone (each JDBC read of the reference is one)."""
        conn = psycopg2.connect(settings.postgres.dsn())
        with conn.cursor() as cur:
            cur.execute("SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                        "WHERE schemaname = %s AND relname = 'customers'", (namespace,))
            count = cur.fetchone()[0]
        conn.close()
        return count

    order = _order_sender(registry_url, kafka_bootstrap, topic)
    ch = clickhouse_connect.get_client(host=clickhouse_settings.host, port=clickhouse_settings.port)

    def segment_of(order_id: int):
        try:
            rows = ch.query(f"SELECT customer_segment FROM {namespace}.orders FINAL WHERE order_id = {order_id}").result_rows
        except Exception:  # the table appears when the job starts
            return None
        return rows[0][0] if rows else None

    order(0)
    before = reads()
    config = JobConfig(name=f"refc-{unique}", topic=topic, namespace=namespace, sinks=["clickhouse"],
                       trigger_seconds=0.2, reference_refresh_s=3600, checkpoint_dir=str(tmp_path / "checkpoints"))
    runner = JobRunner(ORDERS_JOB, config, settings, spark)
    batches = []
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: segment_of(0) == "gold", 120, "order 0 enriched")
        for order_id in range(1, 21):  # one order per micro-batch: 20 more batches
            order(order_id)
            wait_for(lambda: segment_of(order_id) == "gold", 60, f"order {order_id} enriched")
            batches.append(order_id)
        time.sleep(1.5)  # PostgreSQL publishes a closed session's counters within a second
        assert reads() - before <= 1, f"{reads() - before} reads of the reference over {len(batches) + 1} batches"

        lifecycle.down(["postgres"], echo=lambda *_: None)
        try:
            for order_id in range(100, 103):
                order(order_id)
                wait_for(lambda: segment_of(order_id) == "gold", 60, f"order {order_id} joined while PostgreSQL is down")
        finally:
            assert not lifecycle.up(["postgres"], echo=lambda *_: None), "postgres did not come back"
    finally:
        runner.stop()
        thread.join(60)
        pg.close()


def test_a_pipeline_that_holds_waits_for_its_reference_and_then_joins(spark, settings, kafka_bootstrap, registry_url,
                                                                      unique, tmp_path):
    """on_missing = "hold": an empty reference at start holds the job (nothing written, said in the
    log) until the reference has rows; then every order joins with them, none with nulls."""
    namespace, topic = f"hold_{unique}", f"it.{unique}.hold.orders"
    stores.get("postgres").ensure_table(settings, namespace, CUSTOMERS, "customers")  # exists, but empty
    order = _order_sender(registry_url, kafka_bootstrap, topic)
    for order_id in range(1, 4):
        order(order_id)
    path = tmp_path / "held.toml"
    path.write_text(f'''name = "held-{unique}"
topic = "{topic}"
key = ["order_id"]
namespace = "{namespace}"
sinks = ["postgres"]
trigger_seconds = 0.2
checkpoint_dir = "{tmp_path / 'checkpoints'}"

[reference.customers]
postgres = "customers_current"
join = ["customer_id"]
columns = {{ segment = "customer_segment" }}
on_missing = "hold"
''')
    held = pipeline.load(path)
    runner = JobRunner(held.definition(settings), held, settings, spark)
    thread = threading.Thread(target=runner.run, daemon=True)
    pg = psycopg2.connect(settings.postgres.dsn())
    pg.autocommit = True
    with pg.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{namespace}.orders",))
        assert cur.fetchone()[0] is None
    thread.start()
    try:
        time.sleep(2 * HOLD_CHECK_S)  # held: it has not even made its table
        with pg.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f"{namespace}.orders",))
            assert cur.fetchone()[0] is None
            cur.execute(f"INSERT INTO {namespace}.customers (customer_id, segment, country, _version) "
                        "VALUES (7, 'gold', 'GB', 1)")

        def segments():
            with pg.cursor() as cur:
                try:
                    cur.execute(f"SELECT order_id, customer_segment FROM {namespace}.orders ORDER BY order_id")
                except psycopg2.errors.UndefinedTable:
                    return None
                rows = cur.fetchall()
            return rows if len(rows) == 3 else None

        assert wait_for(segments, 90, "the held orders, joined") == [(1, "gold"), (2, "gold"), (3, "gold")]
    finally:
        runner.stop()
        thread.join(60)
        pg.close()
