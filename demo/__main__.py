"""``python -m demo``: publish Avro events to Kafka through the registry and decode them with Spark.

This is the platform's spine as it stands: a contract registered under BACKWARD compatibility,
events in the Confluent wire format from an idempotent producer, and Spark's Kafka source
decoding them in the JVM with ``from_avro``. The streaming job replaces the last step as the
pipeline grows.
"""
from __future__ import annotations

import argparse
import json
import random
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

from settings import get_settings

ORDER_SCHEMA = json.dumps({
    "type": "record", "name": "Order", "namespace": "demo.shop",
    "doc": "A demo order event.",
    "fields": [
        {"name": "event_id", "type": "string", "doc": "Deterministic id of the source change."},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"},
         "doc": "When the change happened at the source."},
        {"name": "order_id", "type": "long", "doc": "Order key; also the Kafka message key."},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]},
         "doc": "Order status after the change."},
        {"name": "amount", "type": "double", "doc": "Order total in the order's currency."},
    ],
})


def publish(topic: str, count: int) -> None:
    settings = get_settings()
    registry = SchemaRegistryClient({"url": settings.registry.url})
    serialize = AvroSerializer(registry, ORDER_SCHEMA)
    key = StringSerializer()
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 20, **settings.kafka.client_config})
    failures: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    rng = random.Random(42)
    now = int(time.time() * 1000)
    for i in range(count):
        order = {"event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo/{i}")), "event_time": now + i,
                 "order_id": i % 200, "status": rng.choice(["NEW", "PAID", "SHIPPED"]),
                 "amount": round(rng.uniform(5, 500), 2)}
        ctx = SerializationContext(topic, MessageField.VALUE)
        producer.produce(topic, key=key(str(order["order_id"])), value=serialize(order, ctx), on_delivery=delivered)
        producer.poll(0)
    producer.flush(60)
    if failures:
        raise SystemExit(f"{len(failures)} events were not acknowledged by Kafka, e.g. {failures[0]}")
    print(f"published {count} Avro events to {topic} (subject {topic}-value at {settings.registry.url})")


def decode_with_spark(topic: str) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    from streaming.session import build_session

    settings = get_settings()
    spark = build_session("demo")
    spark.sparkContext.setLogLevel("WARN")
    raw = (spark.read.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
           .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest")
           .load())
    orders = raw.select(from_avro(F.expr("substring(value, 6, length(value) - 5)"), ORDER_SCHEMA).alias("o")).select("o.*")
    summary = orders.groupBy("status").agg(F.count("*").alias("events"), F.round(F.sum("amount"), 2).alias("amount"))
    print(f"decoded by Spark {spark.version} from Kafka with from_avro:")
    summary.orderBy("status").show()
    spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="demo.api.orders")
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    publish(args.topic, args.events)
    decode_with_spark(args.topic)


if __name__ == "__main__":
    main()
