"""A new table from a five-line pipeline file into all four sinks; two pipelines in two namespaces
each leave only their own tables there."""
from datetime import datetime, timezone

import clickhouse_connect
import psycopg2
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from minio import Minio

from schemas import contracts
from schemas.serde import AvroSerializer
from streaming import pipelines
from streaming.jobs import pipeline
from streaming.jobs.runner import JobRunner
from streaming.plan import serving_table
from streaming.stores.cassandra import connect
from tests.integration import sink_contents
from tests.integration.serving_tables import customers_dimension

T0 = int(datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc).timestamp() * 1000)


def _publish(registry_url: str, kafka_bootstrap: str, topic: str, contract: str, events: list[dict]) -> None:
    value = AvroSerializer(SchemaRegistryClient({"url": registry_url}), f"{topic}-value",
                           contracts.contract(contract).schema)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for event in events:
        producer.produce(topic, value=value(event))
    assert producer.flush(30) == 0


def _tables(settings, namespace: str) -> dict[str, set[str]]:
    conn = psycopg2.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (namespace,))
        pg = {r[0] for r in cur.fetchall()}
    conn.close()
    ch = clickhouse_connect.get_client(host=settings.clickhouse.host, port=settings.clickhouse.port)
    clickhouse = {r[0] for r in ch.query("SELECT name FROM system.tables WHERE database = {d:String}",
                                         parameters={"d": namespace}).result_rows}
    cluster, session = connect(settings)
    cassandra = {r.table_name for r in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (namespace,))}
    cluster.shutdown()
    s3 = settings.s3
    lake = Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=s3.secure, region=s3.region)
    # The lake's tables; folders named _* are the namespace's own (a job's staged changes, the raw archive).
    prefixes = {o.object_name.split("/")[1] for o in lake.list_objects(s3.lake_bucket, prefix=f"{namespace}/")
                if not o.object_name.split("/")[1].startswith("_")}
    return {"postgres": pg, "clickhouse": clickhouse, "cassandra": cassandra, "lake": prefixes}


def test_two_pipelines_in_two_namespaces_keep_to_their_own(spark, settings, kafka_bootstrap, registry_url, unique,
                                                         tmp_path):
    payments_topic, orders_topic = f"it.{unique}.ns.payments", f"it.{unique}.ns.orders"
    _publish(registry_url, kafka_bootstrap, payments_topic, "shop.files.payments", [
        {"event_id": f"p{i}", "event_time": T0 + i, "source": {"connector": "t", "position": str(i), "ts_ms": T0},
         "payment_id": f"pay-{i}", "order_id": i, "amount": 2.5 * i, "currency": "EUR",
         "method": "card" if i % 2 else None, "paid_at": T0 + i} for i in range(5)])
    _publish(registry_url, kafka_bootstrap, orders_topic, "shop.api.orders", [
        {"event_id": f"o{i}", "event_time": T0 + i, "source": {"connector": "t", "position": str(i), "ts_ms": T0},
         "order_id": i, "customer_id": 1, "status": "NEW", "amount": 1.0, "currency": "EUR", "updated_at": T0 + i}
        for i in range(3)])
    # A table no code knows, from a pipeline file of five lines.
    (tmp_path / "payments.toml").write_text(f'''name = "payments-{unique}"
topic = "{payments_topic}"
key = ["payment_id"]
namespace = "ns_a_{unique}"
checkpoint_dir = "{tmp_path / 'checkpoints'}"
''')
    payments = pipeline.load(tmp_path / "payments.toml")
    orders = pipeline.load(pipelines.path("orders"), name=f"orders-{unique}", topic=orders_topic,
                           namespace=f"ns_b_{unique}", checkpoint_dir=str(tmp_path / "checkpoints"))
    customers_dimension(settings, orders.namespace)  # what the customers pipeline keeps there
    for p in (payments, orders):
        JobRunner(p.definition(), p, settings, spark).run(available_now=True)

    table = serving_table(payments.definition(), payments, settings, spark)
    rows = sink_contents.all_sinks(settings, payments.namespace, table)
    assert rows["postgres"] == rows["clickhouse"] == rows["cassandra"] == rows["lake"]
    assert {k[0]: (r["amount"], r["method"]) for k, r in rows["postgres"].items()} == {
        f"pay-{i}": (2.5 * i, "card" if i % 2 else None) for i in range(5)}

    assert _tables(settings, payments.namespace) == {
        "postgres": {"payments", "payments_current"}, "clickhouse": {"payments"}, "cassandra": {"payments"},
        "lake": {"payments"}}
    assert _tables(settings, orders.namespace) == {
        "postgres": {"orders", "orders_current", "customers", "customers_current"},
        "clickhouse": {"orders", "customer_hourly", "pipeline_migrations"}, "cassandra": {"orders"}, "lake": {"orders"}}
