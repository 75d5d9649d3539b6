"""``python -m demo``: order events through the orders job into all four stores, on the local stack.

1. Publishes order events (contract ``shop.api.orders``) to Kafka in the Confluent wire format with
   an idempotent producer, a few of them invalid.
2. Seeds a few customers into the dimension the orders pipeline joins, then runs the orders
   pipeline (``streaming/pipelines/orders.toml``) over what the topic holds: decode in the
   JVM, validate, normalise, enrich, dedupe, and write Cassandra, the S3 Delta lake, ClickHouse
   and PostgreSQL idempotently; invalid events go to ``shop.api.orders.dlq``.
3. Shows what each store now holds.

Event ids are deterministic: running the demo again re-sends the same changes; the job drops them
as duplicates within its watermark (10 minutes of arrival time), and even later the serving
stores do not change (their writes are guarded by version). The lake, an archive of what
arrived, records such late re-sends again.
"""
from __future__ import annotations

import argparse
import random
import time

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import contracts
from schemas.serde import AvroSerializer
from kappa.settings import get_settings

TOPIC = "shop.api.orders"
T0 = 1_795_651_200_000  # 2026-11-26T00:00:00Z


def publish(count: int, first: int = 0, echo: bool = True, t0: int | None = None, step_ms: int = 1000) -> None:
    """``count`` order events, ``step_ms`` apart; ``first`` numbers them on from an earlier call.
    Their times go on from the demo's fixed start, or start at ``t0`` (a caller publishing in rounds
    with a later ``t0`` each time sends new versions, not the same events again)."""
    settings = get_settings()
    registry = SchemaRegistryClient({"url": settings.registry.url})
    value = AvroSerializer(registry, f"{TOPIC}-value", contracts.contract(TOPIC).schema)
    key = AvroSerializer(registry, f"{TOPIC}-key", '"string"')
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 20, **settings.kafka.client_config})
    failures: list[str] = []
    rng = random.Random(42 + first)
    for i in range(first, first + count):
        order_id = rng.randrange(max(1, (first + count) // 4))
        updated = T0 + i * step_ms if t0 is None else t0 + (i - first) * step_ms
        amount = round(rng.uniform(5, 500), 2) if i % 97 else -1.0  # about 1% break the amount rule
        event = {"event_id": f"demo-{order_id}-{updated}", "event_time": updated,
                 "source": {"connector": "demo", "position": str(i), "ts_ms": updated},
                 "order_id": order_id, "customer_id": order_id % 50,
                 "status": rng.choice(["NEW", "PAID", "SHIPPED", "CANCELLED"]), "amount": amount,
                 "currency": rng.choice(["EUR", "usd", " gbp "]), "updated_at": updated}
        producer.produce(TOPIC, key=key(str(order_id)), value=value(event),
                         on_delivery=lambda err, msg: err and failures.append(str(err)))
        producer.poll(0)
    producer.flush(60)
    if failures:
        raise SystemExit(f"{len(failures)} events were not acknowledged by Kafka, e.g. {failures[0]}")
    if echo:
        print(f"published {count} order events to {TOPIC} (schema subject {TOPIC}-value)")


def seed_customers(namespace: str) -> None:
    """A few customers in the dimension the orders pipeline joins (``customers_current``), as the
    customers pipeline would keep them from CDC; rows it already holds are left alone."""
    import psycopg2

    from streaming.stores.postgres import PostgresStore
    from streaming.tables import Table

    dimension = Table("customers", ("customer_id",), (
        ("customer_id", "bigint"), ("segment", "string"), ("country", "string"), ("event_id", "string"),
        ("event_time", "timestamp")))
    PostgresStore().ensure_table(get_settings(), namespace, dimension, "demo")
    pg = psycopg2.connect(get_settings().postgres.dsn())
    with pg, pg.cursor() as cur:
        cur.executemany(f"INSERT INTO {namespace}.customers (customer_id, segment, country, _version) "
                        "VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING",
                        [(c, ["gold", "silver", "bronze"][c % 3], ["DE", "FR", "GB", "NL"][c % 4]) for c in range(40)])
    pg.close()


def run_job(namespace: str) -> None:
    from streaming import pipelines
    from streaming.jobs import pipeline
    from streaming.jobs.runner import JobRunner
    from streaming.session import build_session

    spark = build_session("demo")
    spark.sparkContext.setLogLevel("WARN")
    orders = pipeline.load(pipelines.path("orders"), name="demo-orders", topic=TOPIC, namespace=namespace)
    started = time.perf_counter()
    JobRunner(orders.definition(), orders, get_settings(), spark).run(available_now=True)
    print(f"orders pipeline caught up in {time.perf_counter() - started:.1f}s (checkpoint {orders.checkpoint})")
    spark.stop()


def show(namespace: str) -> None:
    import clickhouse_connect
    import psycopg2
    from deltalake import DeltaTable

    from streaming.stores import lake
    from streaming.stores.cassandra import connect

    settings = get_settings()
    pg = psycopg2.connect(settings.postgres.dsn())
    with pg.cursor() as cur:
        cur.execute(f"SELECT count(*), round(sum(amount)::numeric, 2) FROM {namespace}.orders_current")
        pg_count, pg_sum = cur.fetchone()
    pg.close()
    ch = clickhouse_connect.get_client(host=settings.clickhouse.host, port=settings.clickhouse.port)
    ch_count, ch_sum = ch.query(f"SELECT count(), round(sum(amount), 2) FROM {namespace}.orders FINAL").result_rows[0]
    top = ch.query(f"SELECT customer_id, sum(events) AS orders, round(sum(amount), 2) FROM {namespace}.customer_hourly "
                   "GROUP BY customer_id ORDER BY orders DESC LIMIT 3").result_rows
    cluster, session = connect(settings)
    cass_count = session.execute(f"SELECT count(*) FROM {namespace}.orders").one()[0]
    cluster.shutdown()
    table = DeltaTable(lake.uri(settings, namespace, "orders"), storage_options=lake.storage_options(settings))
    s3 = settings.s3
    from_clickhouse = ch.query(f"SELECT count() FROM deltaLake('{s3.url}/{s3.lake_bucket}/{namespace}/orders/', "
                               f"'{s3.access_key}', '{s3.secret_key}')").result_rows[0][0]
    print(f"PostgreSQL  {namespace}.orders_current: {pg_count} orders, amount {pg_sum}")
    print(f"ClickHouse  {namespace}.orders FINAL:   {ch_count} orders, amount {ch_sum}")
    print(f"Cassandra   {namespace}.orders:         {cass_count} orders")
    print(f"Delta lake  {lake.uri(settings, namespace, 'orders')}: {table.to_pyarrow_table().num_rows} changes "
          f"in {len(table.file_uris())} files, version {table.version()} (ClickHouse deltaLake() counts {from_clickhouse})")
    print("top customers by orders (ClickHouse customer_hourly):", top)
    by_segment = ch.query(f"SELECT customer_segment, count() FROM {namespace}.orders FINAL GROUP BY 1 ORDER BY 1").result_rows
    print("orders by customer segment (joined from PostgreSQL customers_current; customers 40-49 have none):",
          by_segment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--namespace", default="serving")
    args = parser.parse_args()
    publish(args.events)
    seed_customers(args.namespace)
    run_job(args.namespace)
    show(args.namespace)


if __name__ == "__main__":
    main()
