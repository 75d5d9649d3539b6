"""Avro through the schema registry with confluent-kafka's own client, serializer and deserializer."""
import json
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.registry.store import Store


def order_schema(*extra):
    fields = [{"name": "order_id", "type": "long", "doc": "order key"},
              {"name": "amount", "type": "double", "doc": "total"}, *extra]
    return json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": fields})


V1 = order_schema()
V2 = order_schema({"name": "currency", "type": "string", "default": "EUR", "doc": "ISO 4217"})
BREAKING = order_schema({"name": "channel", "type": "string", "doc": "no default: old data has none"})


def test_avro_roundtrip_through_kafka_with_evolution(kafka_bootstrap, registry_url, unique):
    topic = f"it.registry.orders-{unique}"
    client = SchemaRegistryClient({"url": registry_url})
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for schema, value in ((V1, {"order_id": 1, "amount": 9.5}),
                          (V2, {"order_id": 2, "amount": 3.0, "currency": "USD"})):
        serialize = AvroSerializer(client, schema)
        # One key: one partition, so the two records keep their order.
        producer.produce(topic, key="order", value=serialize(value, SerializationContext(topic, MessageField.VALUE)))
    producer.flush(30)

    assert client.get_versions(f"{topic}-value") == [1, 2]
    deserialize = AvroDeserializer(client)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{unique}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values, deadline = [], time.monotonic() + 60
    while len(values) < 2 and time.monotonic() < deadline:
        msg = consumer.poll(1)
        if msg is None or msg.error():
            continue
        assert msg.value()[0] == 0  # Confluent wire format: magic byte 0, then a 4-byte schema id
        values.append(deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE)))
    consumer.close()
    assert values == [{"order_id": 1, "amount": 9.5}, {"order_id": 2, "amount": 3.0, "currency": "USD"}]


def test_backward_incompatible_change_is_refused_with_409(registry_url, unique):
    subject = f"it.registry.refuse-{unique}-value"
    client = SchemaRegistryClient({"url": registry_url})
    client.register_schema(subject, Schema(V1, "AVRO"))
    assert client.get_compatibility() == "BACKWARD"  # the registry-wide default; the subject has none
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(BREAKING, "AVRO"))
    assert refused.value.http_status_code == 409
    assert "channel" in refused.value.error_message and subject in refused.value.error_message
    assert client.test_compatibility(subject, Schema(BREAKING, "AVRO")) is False
    assert client.test_compatibility(subject, Schema(V2, "AVRO")) is True
    # The same change passes once the subject's level allows it.
    client.set_compatibility(subject, "NONE")
    assert client.register_schema(subject, Schema(BREAKING, "AVRO")) > 0


def test_registry_state_is_rebuilt_from_its_topic(kafka_bootstrap, unique):
    topic = f"_schemas-it-{unique}"
    first = Store(kafka_bootstrap, topic)
    first.start()
    a = first.register("orders-value", V1)
    b = first.register("orders-value", V2)
    same = first.register("other-value", V1)
    first.set_compatibility_level("orders-value", "FULL")
    first.delete_version("other-value", "1", permanent=False)
    line = json.dumps({"type": "record", "name": "Line", "namespace": "shop", "fields": [
        {"name": "order", "type": "shop.Order"}, {"name": "qty", "type": "int"}]})
    with_ref = first.register("lines-value", line, references=[{"name": "shop.Order", "subject": "orders-value",
                                                                "version": 1}], metadata={"properties": {"o": "x"}})
    first.set_mode("lines-value", "READONLY")
    first.set_config("orders-value", {"compatibilityGroup": "major"})
    first.close()

    second = Store(kafka_bootstrap, topic)
    second.start()
    assert same.id == a.id  # one id per distinct schema, across subjects
    assert [v.id for v in second.versions("orders-value")] == [a.id, b.id]
    assert second.compatibility_level("orders-value") == "FULL"
    assert second.subjects() == ["lines-value", "orders-value"]
    assert second.subjects(include_deleted=True) == ["lines-value", "orders-value", "other-value"]
    assert second.register("orders-value", V2).version == 2  # idempotent re-registration
    restored = second.version("lines-value", 1)
    assert (restored.id, restored.guid, restored.references, restored.metadata) == \
        (with_ref.id, with_ref.guid, with_ref.references, {"properties": {"o": "x"}})
    assert second.referenced_by("orders-value", 1) == [with_ref.id]
    assert second.mode("lines-value") == "READONLY"
    assert second.config("orders-value") == {"compatibilityLevel": "FULL", "compatibilityGroup": "major"}
