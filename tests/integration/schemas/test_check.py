"""``make schemas-check``: contracts are validated and registered; an incompatible change is refused."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient

from schemas import contracts
from schemas.serde import AvroDeserializer, AvroSerializer, split

REPO = Path(__file__).resolve().parents[3]


def schemas_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "schemas.check", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_shipped_contracts_pass_and_register(registry_url, unique):
    prefix = f"it-{unique}."
    result = schemas_check("--subject-prefix", prefix)
    assert result.returncode == 0, result.stderr
    client = SchemaRegistryClient({"url": registry_url})
    for contract in contracts.load():
        assert client.get_latest_version(prefix + contract.subject).version == 1


def test_incompatible_change_is_refused_naming_subject_field_and_rule(registry_url, unique, tmp_path):
    prefix = f"it-{unique}."
    shutil.copy(contracts.CONTRACTS_DIR / "shop.api.orders.avsc", tmp_path)
    assert schemas_check("--dir", str(tmp_path), "--subject-prefix", prefix).returncode == 0

    path = tmp_path / "shop.api.orders.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "sales_channel", "type": "string", "doc": "added without a default"})
    path.write_text(json.dumps(schema))
    result = schemas_check("--dir", str(tmp_path), "--subject-prefix", prefix)
    assert result.returncode == 1
    assert f"{prefix}shop.api.orders-value" in result.stderr
    assert "sales_channel" in result.stderr
    assert "reader_field_missing_default_value" in result.stderr and "BACKWARD" in result.stderr
    # Nothing was registered by the refused run.
    assert SchemaRegistryClient({"url": registry_url}).get_versions(f"{prefix}shop.api.orders-value") == [1]

    # With a default the same field is a compatible change.
    schema["fields"][-1]["default"] = "web"
    path.write_text(json.dumps(schema))
    assert schemas_check("--dir", str(tmp_path), "--subject-prefix", prefix).returncode == 0


def test_a_field_without_doc_is_refused(registry_url, unique, tmp_path):
    schema = json.loads((contracts.CONTRACTS_DIR / "shop.api.orders.avsc").read_text())
    del schema["fields"][4]["doc"]
    (tmp_path / "shop.api.orders.avsc").write_text(json.dumps(schema))
    result = schemas_check("--dir", str(tmp_path), "--subject-prefix", f"it-{unique}.", "--dry-run")
    assert result.returncode == 1
    assert "Order.customer_id has no doc" in result.stderr


def test_serde_round_trip_and_reader_schema_resolution(registry_url, unique):
    client = SchemaRegistryClient({"url": registry_url})
    contract = contracts.contract("shop.api.orders")
    serialize = AvroSerializer(client, f"it-{unique}.{contract.subject}", contract.schema)
    event = {"event_id": "e1", "event_time": 1_764_115_200_000,
             "source": {"connector": "api", "position": "p", "ts_ms": 1_764_115_200_001},
             "order_id": 7, "customer_id": 3, "status": "PAID", "amount": 12.5, "currency": "EUR",
             "updated_at": 1_764_115_200_000}
    framed = serialize(event)
    schema_id, _ = split(framed)
    assert framed[0] == 0 and schema_id == serialize.schema_id
    decoded = AvroDeserializer(client)(framed)
    assert decoded["order_id"] == 7 and decoded["status"] == "PAID"
    # A reader that dropped a field and added one with a default still reads the old bytes.
    reader = json.loads(contract.schema)
    reader["fields"] = [f for f in reader["fields"] if f["name"] != "currency"]
    reader["fields"].append({"name": "note", "type": "string", "default": "", "doc": "new"})
    resolved = AvroDeserializer(client, reader)(framed)
    assert "currency" not in resolved and resolved["note"] == ""
