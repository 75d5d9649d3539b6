"""``kappa new``: a starting pipeline file, so a user edits one rather than types it.

Three starting points, each read from where the columns are already known:
- a topic the registry has: its ``<topic>-value`` fields (a CDC envelope's ``after`` row), and its
  key from ``<topic>-key`` when one is registered;
- a PostgreSQL table to capture with the CDC connector (``schema.table`` and ``--topic-prefix``):
  the catalog's columns, primary key and NOT NULL flags, checked as the connector checks them;
- a sample data file for the files connector (``--sample``): an Avro contract inferred from its
  rows (types, the key not null, every other field optional), written beside the pipeline file.
The pipeline file says what was found (the key, the required columns, enums) and, commented out,
what is commonly added next (sinks, references, normalisation).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from connectors.files.readers import BadRow, file_format, rows
from connectors.records import ENVELOPE_FIELDS, namespace_for
from kappa.settings import Settings
from kappa.errors import Refused

SAMPLE_ROWS = 1000  # rows of a sample file read to infer each column's type


@dataclass
class Draft:
    """What a starting pipeline file says."""

    name: str
    topic: str
    key: list[str] | None                  # None: the topic's key schema gives it
    namespace: str = "serving"
    required: list[str] = field(default_factory=list)
    enums: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # comment lines at the top


class DraftError(Refused, ValueError):
    """The starting point does not say enough; the message says what to pass."""


def _table_name(topic: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", topic.rsplit(".", 1)[-1].lower())


def _non_null(avro_type) -> bool:
    return not (isinstance(avro_type, list) and "null" in avro_type)


def from_registry(settings: Settings, topic: str, key: list[str] | None = None) -> Draft:
    """A pipeline for a topic whose schema the registry has."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    registry = SchemaRegistryClient({"url": settings.registry.url})
    try:
        value = json.loads(registry.get_latest_version(f"{topic}-value").schema.schema_str)
    except SchemaRegistryError as exc:
        raise DraftError(f"the registry ({settings.registry.url}) has no schema for topic {topic} (subject "
                         f"{topic}-value: {exc.error_message}): publish to it first, or start from --sample") from None
    fields = {f["name"]: f for f in value["fields"]}
    notes = [f"from the registry's {topic}-value"]
    if {"before", "after", "op"} <= set(fields):
        row = next(b for b in fields["after"]["type"] if b != "null")
        row = row if isinstance(row, dict) else next(b for b in fields["before"]["type"] if b != "null")
        columns = row["fields"]
        notes.append("a CDC envelope: one row per key, deletes become tombstones")
    else:
        columns = [f for f in value["fields"] if f["name"] not in ENVELOPE_FIELDS]
    if key is None:
        try:
            registered = json.loads(registry.get_latest_version(f"{topic}-key").schema.schema_str)
            notes.append(f"key: {[f['name'] for f in registered['fields']]}, from {topic}-key")
        except (SchemaRegistryError, KeyError, TypeError):
            raise DraftError(f"topic {topic} has no record key schema ({topic}-key) to take the key from: "
                             "pass --key column[,column...]") from None
    enums = {f["name"]: t["symbols"] for f in columns for t in (f["type"] if isinstance(f["type"], list)
                                                                else [f["type"]])
             if isinstance(t, dict) and t.get("type") == "enum"}
    return Draft(_table_name(topic), topic, key, required=[f["name"] for f in columns if _non_null(f["type"])],
                 enums=enums, notes=notes)


def from_catalog(settings: Settings, qualified: str, topic_prefix: str, key: list[str] | None = None) -> Draft:
    """A pipeline for a PostgreSQL table the CDC connector is to capture."""
    import psycopg2

    from connectors.cdc.connector import table_identity

    if "." not in qualified:
        qualified = f"public.{qualified}"
    conn = psycopg2.connect(settings.postgres.dsn(), connect_timeout=10)
    try:
        with conn.cursor() as cur:
            found = table_identity(cur, qualified)
    finally:
        conn.close()
    if found is None:
        raise DraftError(f"table {qualified} does not exist in {settings.postgres.dsn()}")
    table = qualified.split(".", 1)[1]
    notes = [f"from the catalog of {qualified}; add it to the CDC connector's tables = [\"{qualified}\"]"]
    if key:
        notes += [f"declare the same key in the connector: keys = {{ \"{qualified}\" = {json.dumps(key)} }}"]
        if not found.primary_key and found.replica_identity != "f":
            notes.append(f"and ALTER TABLE {qualified} REPLICA IDENTITY FULL, or insert_only = [\"{qualified}\"]")
    elif found.primary_key:
        notes.append(f"key: the primary key {found.primary_key}, which the connector registers as {topic_prefix}."
                     f"{table}-key")
    else:
        raise DraftError(f"table {qualified} has no primary key: pass --key column[,column...] (the columns that "
                         "identify a row; the connector needs them too, in its 'keys')")
    return Draft(table, f"{topic_prefix}.{table}", key, required=list(found.not_null), notes=notes)


def _kind(value) -> str:
    """The Avro type a sample value looks like."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, date):
        return "date"
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return "boolean"
    if re.fullmatch(r"[+-]?\d{1,18}", text):
        return "long"
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", text):
        return "double"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return "date"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", text):
        return "timestamp"
    return "string"


_AVRO = {"boolean": "boolean", "long": "long", "double": "double", "string": "string",
         "date": {"type": "int", "logicalType": "date"},
         "timestamp": {"type": "long", "logicalType": "timestamp-millis"}}


def infer_columns(sample: Path) -> dict[str, str]:
    """Column -> the kind (:data:`_AVRO`) every non-empty value of the sample's first rows fits."""
    fmt = file_format(sample.name)
    if fmt is None:
        raise DraftError(f"{sample}: not a CSV, JSON Lines or Parquet file")
    kinds: dict[str, set[str]] = {}
    for count, (_, row) in enumerate(rows(sample, fmt)):
        if count >= SAMPLE_ROWS:
            break
        if isinstance(row, BadRow):
            continue
        for column, value in row.items():
            seen = kinds.setdefault(column, set())
            if value is not None and value != "":
                seen.add(_kind(value))
    if not kinds:
        raise DraftError(f"{sample}: no rows to infer the columns from")
    out = {}
    for column, seen in kinds.items():
        if len(seen) == 1:
            out[column] = next(iter(seen))
        elif seen == {"long", "double"}:
            out[column] = "double"
        else:
            out[column] = "string"
    return out


def contract_for_sample(sample: Path, topic: str, key: list[str], time_field: str | None) -> dict:
    """An Avro contract for the files connector from a sample file: the envelope, then its columns."""
    columns = infer_columns(sample)
    missing = [k for k in key + ([time_field] if time_field else []) if k not in columns]
    if missing:
        raise DraftError(f"{sample}: no column {missing}; it has {list(columns)}")
    when = (f"When the row happened (its {time_field} column)." if time_field else
            "Ingest time: when the file landed (its modification time; LastModified on S3), as the data has no "
            "time of its own.")
    fields = [
        {"name": "event_id", "type": "string", "doc": "Deterministic id of the row: its file, row number and content."},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": when},
        {"name": "source", "doc": "Where the row was read.", "type": {
            "type": "record", "name": "FileSource", "fields": [
                {"name": "connector", "type": "string", "doc": "Name of the connector instance that published it."},
                {"name": "position", "type": "string", "doc": "File URI and 1-based row number (file:line)."},
                {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"},
                 "doc": "When the connector read the row."}]}},
    ]
    for column, kind in columns.items():
        doc = f"Column {column} of the files ({kind}, inferred from {sample.name}): say what it means."
        if column in key:
            fields.append({"name": column, "type": _AVRO[kind], "doc": doc + " Part of the key."})
        else:
            fields.append({"name": column, "type": ["null", _AVRO[kind]], "default": None, "doc": doc})
    entity = topic.rsplit(".", 1)[-1]
    return {"type": "record", "name": "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", entity) if p) or "Row",
            "namespace": namespace_for(topic.rsplit(".", 1)[0]) if "." in topic else "files",
            "doc": f"A row of the files published to {topic} (contract inferred from {sample.name}: review it).",
            "fields": fields}


def from_sample(sample: Path, topic: str, key: list[str], contract_path: Path,
                time_field: str | None = None) -> Draft:
    """A pipeline for files like ``sample``, and their contract written to ``contract_path``."""
    if not key:
        raise DraftError("a sample file needs --key column[,column...]: the columns that identify a row")
    contract = contract_for_sample(sample, topic, key, time_field)
    contract_path.parent.mkdir(parents=True, exist_ok=True)
    contract_path.write_text(json.dumps(contract, indent=2) + "\n")
    connector = {"topic": topic, "contract": str(contract_path), "key": key}
    if time_field:
        connector["time_field"] = time_field
    return Draft(_table_name(topic), topic, key, required=list(key), notes=[
        f"from the sample {sample.name}; its contract is {contract_path}",
        "files connector settings: " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in connector.items())])


def render(draft: Draft) -> str:
    """The pipeline file's text."""
    lines = [f"# Pipeline {draft.name}, written by `kappa new`: review it, then",
             f"#   kappa run {draft.name}.toml",
             *(f"# {note}" for note in draft.notes),
             f"name = {json.dumps(draft.name)}",
             f"topic = {json.dumps(draft.topic)}"]
    if draft.key is not None:
        lines.append(f"key = {json.dumps(draft.key)}")
    lines += [f"namespace = {json.dumps(draft.namespace)}",
              '# sinks = ["cassandra", "lake", "clickhouse", "postgres"]',
              "# trigger_seconds = 1.0             # the serving stores' micro-batches",
              "# lake_trigger_seconds = 30.0       # how often the lake commits what the batches staged",
              "# version = \"event_time\"          # events: the column that orders a key's changes"]
    if draft.required or draft.enums:
        lines += ["", "[validate]"]
        if draft.required:
            lines.append(f"required = {json.dumps(draft.required)}")
        if draft.enums:
            lines.append("enum = { " + ", ".join(f"{c} = {json.dumps(v)}" for c, v in draft.enums.items()) + " }")
    lines += ["", "# [normalise]", "# upper = [\"country\"]",
              "", "# [reference.customers]            # enrich from a PostgreSQL table",
              "# postgres = \"customers_current\"", "# join = [\"customer_id\"]",
              "# on_missing = \"keep\"               # keep | dlq | hold"]
    return "\n".join(lines) + "\n"
