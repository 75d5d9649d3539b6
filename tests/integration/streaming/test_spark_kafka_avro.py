"""The shared SparkSession reads Confluent-framed Avro from Kafka with the native source and from_avro."""
import json

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

SCHEMA = json.dumps({
    "type": "record", "name": "Click", "namespace": "web",
    "fields": [
        {"name": "event_id", "type": "string", "doc": "deterministic id"},
        {"name": "user_id", "type": "long", "doc": "who clicked"},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "when"},
    ],
})


def test_spark_reads_avro_written_by_confluent_kafka(spark, kafka_bootstrap, registry_url, unique):
    topic = f"it.spark.clicks-{unique}"
    serialize = AvroSerializer(SchemaRegistryClient({"url": registry_url}), SCHEMA)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(100):
        value = {"event_id": f"e{i}", "user_id": i % 7, "event_time": 1_764_115_200_000 + i}
        producer.produce(topic, key=str(i % 7), value=serialize(value, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(30) == 0

    raw = (spark.read.format("kafka")
           .option("kafka.bootstrap.servers", kafka_bootstrap)
           .option("subscribe", topic)
           .option("startingOffsets", "earliest")
           .option("endingOffsets", "latest")
           .load())
    # Confluent framing: byte 0 is the magic 0, bytes 1-4 the schema id, the Avro body follows.
    decoded = raw.select(
        F.expr("substring(value, 1, 1)").alias("magic"),
        F.expr("conv(hex(substring(value, 2, 4)), 16, 10)").cast("int").alias("schema_id"),
        from_avro(F.expr("substring(value, 6, length(value) - 5)"), SCHEMA).alias("event"),
    ).select("magic", "schema_id", "event.*")
    rows = decoded.collect()
    assert len(rows) == 100
    assert {bytes(r.magic) for r in rows} == {b"\x00"}
    assert len({r.schema_id for r in rows}) == 1
    assert sorted(r.event_id for r in rows) == sorted(f"e{i}" for i in range(100))
    per_user = dict(decoded.groupBy("user_id").count().collect())
    assert sum(per_user.values()) == 100 and len(per_user) == 7
