"""The registry behaves like Confluent's for every Avro call its clients make.

Only public clients and HTTP here (confluent-kafka's sync and async ``SchemaRegistryClient``,
its Avro serializers, raw HTTP for what no client method covers), so the same checks run against
any registry: ``KAPPA_REGISTRY__URL=http://host:8081 pytest tests/integration/schemas/test_registry_api.py``
compares this one with Confluent's, Karapace or Apicurio. Without it, the local stack's registry.
"""
import asyncio
import json
import uuid

import requests
import pytest
from confluent_kafka.schema_registry import (AsyncSchemaRegistryClient, ConfigCompatibilityLevel, Metadata, MetadataProperties, MetadataTags,
                                             Rule, RuleKind, RuleMode, RuleSet, Schema, SchemaReference,
                                             SchemaRegistryClient, ServerConfig)
from confluent_kafka.schema_registry.avro import (AsyncAvroDeserializer, AsyncAvroSerializer, AvroDeserializer,
                                                  AvroSerializer)
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.conftest import require

ADDRESS = json.dumps({"type": "record", "name": "Address", "namespace": "shop",
                      "fields": [{"name": "city", "type": "string"}]})
CUSTOMER = json.dumps({"type": "record", "name": "Customer", "namespace": "shop",
                       "fields": [{"name": "id", "type": "long"}, {"name": "home", "type": "shop.Address"}]})
CUSTOMER_V2 = json.dumps({"type": "record", "name": "Customer", "namespace": "shop",
                          "fields": [{"name": "id", "type": "long"}, {"name": "home", "type": "shop.Address"},
                                     {"name": "tier", "type": "string", "default": "basic"}]})
PLAIN = json.dumps({"type": "record", "name": "Plain", "fields": [{"name": "n", "type": "int"}]})


@pytest.fixture(scope="module")
def url(settings) -> str:
    """The settings' registry (KAPPA_REGISTRY__URL): the stack's, or any other to compare with."""
    host, _, port = settings.registry.url.split("//", 1)[1].split("/", 1)[0].rpartition(":")
    require("schema-registry", host, int(port))
    return settings.registry.url


@pytest.fixture
def client(url) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url})


def fresh(name: str) -> str:
    return f"it.sr.{name}-{uuid.uuid4().hex[:10]}"


def error_of(call) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as raised:
        call()
    return raised.value


def test_references_register_resolve_list_and_block_deletes(url, client):
    address, customer = fresh("address"), fresh("customer") + "-value"
    client.register_schema(address, Schema(ADDRESS, "AVRO"))
    ref = SchemaReference("shop.Address", address, 1)
    customer_id = client.register_schema(customer, Schema(CUSTOMER, "AVRO", [ref]))

    registered = client.get_latest_version(customer)
    assert [(r.name, r.subject, r.version) for r in registered.schema.references] == [("shop.Address", address, 1)]
    assert client.get_schema(customer_id).references[0].subject == address
    assert client.get_referenced_by(address, 1) == [customer_id]
    assert client.lookup_schema(customer, Schema(CUSTOMER, "AVRO", [ref])).version == 1

    # The serializer and the deserializer resolve the referenced type through the registry.
    ctx = SerializationContext(customer.removesuffix("-value"), MessageField.VALUE)
    serialize = AvroSerializer(client, Schema(CUSTOMER, "AVRO", [ref]), conf={"auto.register.schemas": False,
                                                                          "use.latest.version": True})
    value = {"id": 7, "home": {"city": "Lyon"}}
    framed = serialize(value, ctx)
    assert int.from_bytes(framed[1:5], "big") == customer_id
    assert AvroDeserializer(SchemaRegistryClient({"url": url}))(framed, ctx) == value

    # Compatibility checks resolve references too: a field with a default passes, a type change does not.
    assert client.test_compatibility(customer, Schema(CUSTOMER_V2, "AVRO", [ref])) is True
    broken = CUSTOMER_V2.replace('"type": "long"', '"type": "string"')
    assert client.test_compatibility(customer, Schema(broken, "AVRO", [ref])) is False

    # A referenced schema cannot be deleted while a live schema references it.
    refused = error_of(lambda: client.delete_subject(address))
    assert (refused.http_status_code, refused.error_code) == (422, 42206)
    refused = error_of(lambda: client.delete_version(address, 1))
    assert refused.error_code == 42206
    client.delete_subject(customer)
    assert client.get_referenced_by(address, 1) == []
    assert client.delete_subject(address) == [1]

    unknown = error_of(lambda: client.register_schema(fresh("dangling"), Schema(
        CUSTOMER, "AVRO", [SchemaReference("shop.Address", fresh("nowhere"), 1)])))
    assert unknown.error_code == 42201 and unknown.error_message.startswith("Invalid schema")


def test_references_through_the_async_client(url):
    async def scenario():
        client = AsyncSchemaRegistryClient({"url": url})
        address, customer = fresh("address"), fresh("customer") + "-value"
        await client.register_schema(address, Schema(ADDRESS, "AVRO"))
        ref = SchemaReference("shop.Address", address, 1)
        customer_id = await client.register_schema(customer, Schema(CUSTOMER, "AVRO", [ref]))
        ctx = SerializationContext(customer.removesuffix("-value"), MessageField.VALUE)
        serialize = await AsyncAvroSerializer(client, Schema(CUSTOMER, "AVRO", [ref]),
                                              conf={"auto.register.schemas": False, "use.latest.version": True})
        framed = await serialize({"id": 1, "home": {"city": "Oslo"}}, ctx)
        deserialize = await AsyncAvroDeserializer(AsyncSchemaRegistryClient({"url": url}))
        decoded = await deserialize(framed, ctx)
        slashed = fresh("async/path") + "/x"
        await client.register_schema(slashed, Schema(PLAIN, "AVRO"))
        slashed_versions = await client.get_versions(slashed)
        try:
            await client.get_version(fresh("missing"), 1)
        except SchemaRegistryError as exc:
            missing = exc.error_code
        return customer_id, framed, decoded, await client.get_referenced_by(address, 1), \
            await client.get_contexts(), await client.get_global_mode(), slashed_versions, missing

    customer_id, framed, decoded, referenced_by, contexts, mode, slashed_versions, missing = asyncio.run(scenario())
    assert slashed_versions == [1] and missing == 40401
    assert int.from_bytes(framed[1:5], "big") == customer_id
    assert decoded == {"id": 1, "home": {"city": "Oslo"}}
    assert referenced_by == [customer_id]
    assert "." in contexts and mode in ("READWRITE", "IMPORT", "READONLY")


def test_a_subject_with_slashes_and_other_characters_round_trips(client):
    subject = fresh("path/to/file.proto") + " ünï%"
    schema_id = client.register_schema(subject, Schema(PLAIN, "AVRO"))
    assert subject in client.get_subjects()
    assert client.get_versions(subject) == [1]
    assert client.get_latest_version(subject).schema_id == schema_id
    assert client.get_version(subject, 1).subject == subject
    assert client.lookup_schema(subject, Schema(PLAIN, "AVRO")).version == 1
    assert client.test_compatibility(subject, Schema(PLAIN, "AVRO")) is True
    client.set_compatibility(subject, "FULL")
    assert client.get_compatibility(subject) == "FULL"
    assert client.delete_subject(subject) == [1]
    assert client.delete_subject(subject, permanent=True) == [1]
    assert subject not in client.get_subjects()


def test_every_error_carries_confluents_shape(url, client):
    for method, path, status in (("GET", "/no/such/route", 404), ("PATCH", "/subjects", 405),
                                 ("GET", "/subjects/none-such-subject/versions", 404)):
        answer = requests.request(method, url + path)
        assert answer.status_code == status, (method, path)
        body = answer.json()
        assert set(body) >= {"error_code", "message"} and isinstance(body["error_code"], int), body
    missing = error_of(lambda: client.get_version(fresh("missing"), 1))
    assert (missing.http_status_code, missing.error_code) == (404, 40401)
    invalid = error_of(lambda: client.register_schema(fresh("bad"), Schema('{"type": "record", "name": "X"}', "AVRO")))
    assert invalid.error_code == 42201 and invalid.error_message.startswith("Invalid schema")
    json_schema = error_of(lambda: client.register_schema(fresh("json"), Schema('{"type": "object"}', "JSON")))
    assert json_schema.http_status_code == 422 and json_schema.error_code is not None


def test_config_with_a_trailing_slash_without_a_level_and_deleted(url, client):
    level = client.get_compatibility()
    assert requests.get(url + "/config/").json()["compatibilityLevel"] == level
    assert requests.put(url + "/config/", json={"compatibility": level}).json() == {"compatibility": level}
    subject = fresh("group")
    client.register_schema(subject, Schema(PLAIN, "AVRO"))
    client.set_config(subject, ServerConfig(compatibility_group="app.major"))  # no compatibility: still fine
    assert client.get_config(subject).compatibility_group == "app.major"
    client.set_config(subject, ServerConfig(compatibility=ConfigCompatibilityLevel.NONE))
    assert client.delete_config(subject).compatibility_level == "NONE"
    assert error_of(lambda: client.get_compatibility(subject)).error_code == 40408  # no subject level now
    answer = requests.get(f"{url}/config/{subject}", params={"defaultToGlobal": "true"}).json()
    assert answer["compatibilityLevel"] == level  # it follows the global one again
    # DELETE /config resets the global config to the registry's default.
    client.set_compatibility(level="FULL")
    assert client.delete_config().compatibility_level == "FULL"
    assert client.get_compatibility() in ("BACKWARD", level)
    client.set_compatibility(level=level)


def test_modes_are_kept_and_enforced(url, client):
    subject = fresh("mode")
    client.register_schema(subject, Schema(PLAIN, "AVRO"))
    assert client.get_global_mode() == "READWRITE"
    assert client.update_global_mode("READWRITE") == "READWRITE"
    assert client.update_mode(subject, "READONLY") == "READONLY"
    assert client.get_mode(subject) == "READONLY"
    refused = error_of(lambda: client.register_schema(subject, Schema(PLAIN.replace('"n"', '"m"'), "AVRO")))
    assert (refused.http_status_code, refused.error_code) == (422, 42205)
    assert client.delete_mode(subject) == "READONLY"
    assert error_of(lambda: client.get_mode(subject)).error_code == 40409
    assert error_of(lambda: client.update_mode(subject, "SIDEWAYS")).error_code == 42204

    # IMPORT: the writer chooses id and version (a migration from another registry).
    imported = fresh("import")
    assert client.update_mode(imported, "IMPORT") == "IMPORT"
    wanted_id = 700_000 + uuid.uuid4().int % 100_000
    answer = requests.post(f"{url}/subjects/{imported}/versions", json={"schema": PLAIN, "id": wanted_id, "version": 4})
    assert answer.status_code == 200, answer.text
    assert client.get_version(imported, 4).schema_id == wanted_id
    client.delete_mode(imported)
    assert client.get_contexts() == ["."] or "." in client.get_contexts()


def test_metadata_rule_sets_and_guids_are_stored_and_returned(client):
    subject = fresh("meta")
    metadata = Metadata(MetadataTags({}), MetadataProperties({"owner": "payments", "app.major": "1"}), [])
    rules = RuleSet(migration_rules=[], domain_rules=[Rule("checkAmount", "positive amounts", RuleKind.CONDITION,
                                                           RuleMode.WRITE, "CEL", None, None, "message.n > 0",
                                                           None, None, False)])
    registered = client.register_schema_full_response(subject, Schema(PLAIN, "AVRO", metadata=metadata,
                                                                      rule_set=rules))
    latest = client.get_latest_version(subject)
    assert latest.schema.metadata.properties.properties["owner"] == "payments"
    assert latest.schema.rule_set.domain_rules[0].name == "checkAmount"
    found = client.get_latest_with_metadata(subject, {"owner": "payments"})
    assert found.version == latest.version
    assert error_of(lambda: client.get_latest_with_metadata(subject, {"owner": "nobody"})).error_code == 40403
    assert registered.guid
    assert json.loads(client.get_schema_by_guid(registered.guid).schema_str) == json.loads(PLAIN)


def test_an_incompatible_schema_is_answered_409_as_confluent_clients_expect(client):
    """confluent-kafka-python's own test_api_register_schema_incompatible: HTTP 409, error_code 409."""
    subject = fresh("incompatible")
    client.set_config(subject, ServerConfig(compatibility=ConfigCompatibilityLevel.BACKWARD))
    client.register_schema(subject, Schema(PLAIN, "AVRO"))
    changed = json.loads(PLAIN)
    changed["fields"] = [{**f, "type": "string"} for f in changed["fields"]]  # every field's type changes
    refused = error_of(lambda: client.register_schema(subject, Schema(json.dumps(changed), "AVRO")))
    assert (refused.http_status_code, refused.error_code) == (409, 409)

