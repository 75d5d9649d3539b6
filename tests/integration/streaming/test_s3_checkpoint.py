"""A job whose checkpoints live on S3 (s3a://) resumes from them: a second run reads only what is new,
in the serving stores and in the lake; a lake whose query's checkpoint is gone is refused, not rewritten."""
from datetime import datetime, timezone

import psycopg2
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from minio import Minio

from schemas import contracts
from schemas.serde import AvroSerializer

from streaming.jobs.runner import JobFailed, JobRunner
from streaming.plan import JobConfig
from tests.integration import sink_contents
from tests.integration.serving_tables import ORDERS, ORDERS_JOB, customers_dimension

T0 = int(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc).timestamp() * 1000)


def test_checkpoint_on_s3_is_resumed(spark, settings, kafka_bootstrap, registry_url, s3_settings, unique):
    topic, namespace = f"it.{unique}.s3ck.orders", f"s3ck_{unique}"
    customers_dimension(settings, namespace)
    registry = SchemaRegistryClient({"url": registry_url})
    value = AvroSerializer(registry, f"{topic}-value", contracts.contract("shop.api.orders").schema)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def send(order_ids) -> None:
        for order_id in order_ids:
            at = T0 + order_id
            producer.produce(topic, value=value({
                "event_id": f"s3ck-{order_id}", "event_time": at,
                "source": {"connector": "test", "position": "0", "ts_ms": at}, "order_id": order_id,
                "customer_id": 1, "status": "NEW", "amount": 1.0, "currency": "EUR", "updated_at": at}))
        assert producer.flush(30) == 0

    prefix = f"checkpoints/{unique}"
    config = JobConfig(name=f"s3ck-{unique}", topic=topic, namespace=namespace, sinks=["postgres", "lake"],
                       checkpoint_dir=f"s3a://{settings.s3.lake_bucket}/{prefix}")
    s3 = Minio(s3_settings.endpoint, access_key=s3_settings.access_key, secret_key=s3_settings.secret_key,
               secure=s3_settings.secure, region=s3_settings.region)

    def run_and_count_batches() -> int:
        JobRunner(ORDERS_JOB, config, settings, spark).run(available_now=True)
        return len([o for o in s3.list_objects(settings.s3.lake_bucket, f"{prefix}/{config.name}/commits/")
                    if o.object_name.rsplit("/", 1)[-1].isdigit()])

    send(range(1, 11))
    first = run_and_count_batches()
    send(range(11, 16))
    second = run_and_count_batches()
    assert first >= 1 and second > first  # the second run committed batches after the first's

    pg = psycopg2.connect(settings.postgres.dsn())
    with pg.cursor() as cur:
        cur.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {namespace}.orders")
        assert cur.fetchone() == (15, 15)
    pg.close()
    changes = [r["event_id"] for r in sink_contents.lake_changes(settings, namespace, ORDERS)]
    assert len(changes) == len(set(changes)) == 15  # the lake resumed where the first run left it

    # Without the checkpoint the batch ids would start at 0 again, which the lake table holds already:
    # the lake would skip them. The job refuses to start and says what to do.
    for leftover in s3.list_objects(settings.s3.lake_bucket, f"{prefix}/{config.name}/", recursive=True):
        s3.remove_object(settings.s3.lake_bucket, leftover.object_name)
    with pytest.raises(JobFailed, match="the query's checkpoint .* does not exist"):
        JobRunner(ORDERS_JOB, config, settings, spark).run(available_now=True)
