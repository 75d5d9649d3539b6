"""Avro schemas of a table's change events: Debezium's envelope, and a key of the primary key.

Value: ``before`` and ``after`` row images, ``op`` (c, u, d, r), ``source`` (connector, db,
schema, table, lsn, txId, ts_ms, snapshot), ``ts_ms``, plus the platform's ``event_id`` and
``event_time``. Key: a record of the primary-key columns, so all changes of a row share a
partition, and the tombstone after a delete compacts the row away.
"""
from __future__ import annotations

from connectors.cdc import types
from connectors.cdc.pgoutput import Relation


def _column_field(column, comment: str | None, not_null: bool) -> dict:
    # Every column is optional in Avro: a delete's key-only "before" image has no value for the
    # other columns, and adding a NOT NULL column stays a BACKWARD-compatible change.
    doc = comment or f"Column {column.name} ({types.type_name(column.type_oid)}{', NOT NULL' if not_null else ''})."
    return {"name": column.name, "type": ["null", types.avro_type(column.type_oid, column.type_modifier)], "default": None, "doc": doc}


def value_schema(namespace: str, relation: Relation, comments: dict[str, str], not_null: set[str]) -> dict:
    row = {
        "type": "record", "name": "Value", "namespace": namespace,
        "doc": f"Row of {relation.schema}.{relation.table}.",
        "fields": [_column_field(c, comments.get(c.name), c.name in not_null) for c in relation.columns],
    }
    source = {
        "type": "record", "name": "Source", "namespace": "io.kappa.connectors.cdc",
        "doc": "Where in PostgreSQL the change comes from.",
        "fields": [
            {"name": "connector", "type": "string", "doc": "Name of the connector instance."},
            {"name": "db", "type": "string", "doc": "Database name."},
            {"name": "schema", "type": "string", "doc": "Schema of the table."},
            {"name": "table", "type": "string", "doc": "Table name."},
            {"name": "lsn", "type": "long", "doc": "WAL position of the change (of the snapshot, for op r)."},
            {"name": "txId", "type": ["null", "long"], "default": None, "doc": "Transaction id; null in the snapshot."},
            {"name": "ts_ms", "type": "long", "doc": "Commit time of the transaction (snapshot start for op r), epoch ms."},
            {"name": "snapshot", "type": "string", "doc": "true, last (the snapshot's final row) or false (streamed)."},
        ],
    }
    return {
        "type": "record", "name": "Envelope", "namespace": namespace,
        "doc": f"A change of a row of {relation.schema}.{relation.table}, in Debezium's envelope.",
        "fields": [
            {"name": "before", "type": ["null", row], "default": None,
             "doc": "Row before the change: key columns only unless the table has REPLICA IDENTITY FULL; null for c and r."},
            {"name": "after", "type": ["null", "Value"], "default": None, "doc": "Row after the change; null for d."},
            {"name": "op", "type": "string", "doc": "c = create, u = update, d = delete, r = read (snapshot)."},
            {"name": "source", "type": source, "doc": "Source metadata of the change."},
            {"name": "ts_ms", "type": "long", "doc": "When the connector processed the change, epoch ms."},
            {"name": "event_id", "type": "string",
             "doc": "Deterministic id: the same source change always gets the same id."},
            {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"},
             "doc": "Commit time of the change at the source."},
        ],
    }


def key_schema(namespace: str, relation: Relation) -> dict | None:
    keys = [c for c in relation.columns if c.is_key]
    if not keys:
        return None
    return {
        "type": "record", "name": "Key", "namespace": namespace,
        "doc": f"Primary key of {relation.schema}.{relation.table}.",
        "fields": [{"name": c.name, "type": types.avro_type(c.type_oid, c.type_modifier), "doc": f"Key column {c.name}."}
                   for c in keys],
    }

