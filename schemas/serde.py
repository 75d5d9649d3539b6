"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro body.

Serialisation is on the connectors' hot path (tens of thousands of events per second per core),
so it uses fastavro's schemaless writer with the parsed schema and the registry id cached, rather
than a per-call client round trip. Readers resolve each writer id once and decode to the reader
schema they were given, as Avro schema resolution prescribes.
"""
from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from kappa.errors import Refused

MAGIC = 0
_HEADER = struct.Struct(">bI")


class WireFormatError(Refused, ValueError):
    """Bytes that are not a Confluent-framed Avro record."""


def subject_for(topic: str, is_key: bool = False) -> str:
    """TopicNameStrategy: ``<topic>-value`` / ``<topic>-key``."""
    return f"{topic}-{'key' if is_key else 'value'}"


def parse_schema(schema: str | dict) -> dict:
    return fastavro.parse_schema(json.loads(schema) if isinstance(schema, str) else schema)


def split(message: bytes) -> tuple[int, bytes]:
    """(schema id, Avro body) of one framed message."""
    if message is None or len(message) < _HEADER.size:
        raise WireFormatError(f"{len(message or b'')} bytes: too short for the Confluent wire format")
    magic, schema_id = _HEADER.unpack_from(message)
    if magic != MAGIC:
        raise WireFormatError(f"magic byte {magic}, expected {MAGIC}: not Confluent-framed Avro")
    return schema_id, message[_HEADER.size:]


class AvroSerializer:
    """Encodes dicts for one subject; registers (or looks up) the schema once, at construction."""

    def __init__(self, registry: SchemaRegistryClient, subject: str, schema: str | dict,
                 auto_register: bool = True) -> None:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        if auto_register:
            self.schema_id = registry.register_schema(subject, Schema(text, "AVRO"))
        else:
            self.schema_id = registry.lookup_schema(subject, Schema(text, "AVRO")).schema_id
        self.subject = subject
        self.parsed = parse_schema(text)
        self._header = _HEADER.pack(MAGIC, self.schema_id)

    def __call__(self, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(self._header)
        fastavro.schemaless_writer(out, self.parsed, record)
        return out.getvalue()


class AvroDeserializer:
    """Decodes framed messages of any writer schema id, optionally into one reader schema."""

    def __init__(self, registry: SchemaRegistryClient, reader_schema: str | dict | None = None) -> None:
        self._registry = registry
        self._reader = parse_schema(reader_schema) if reader_schema is not None else None
        self._writers: dict[int, dict] = {}

    def writer_schema(self, schema_id: int) -> dict:
        if schema_id not in self._writers:
            self._writers[schema_id] = parse_schema(self._registry.get_schema(schema_id).schema_str)
        return self._writers[schema_id]

    def __call__(self, message: bytes) -> dict[str, Any]:
        schema_id, body = split(message)
        return fastavro.schemaless_reader(io.BytesIO(body), self.writer_schema(schema_id), self._reader)
