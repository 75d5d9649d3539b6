"""Avro schema compatibility under the Confluent levels (BACKWARD, FORWARD, FULL, their TRANSITIVE forms, NONE)."""
from __future__ import annotations

import json
from collections.abc import Sequence

import avro.name
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from kappa.errors import Refused

LEVELS = (
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE",
)


class InvalidSchema(Refused, ValueError):
    """The text is not a valid Avro schema."""


def parse(schema_str: str, references: Sequence[str] = ()) -> avro.schema.Schema:
    """The schema, its named types resolved against ``references`` (the referenced schemas' texts,
    each after the ones it references itself), as a schema reference in Confluent's registry is."""
    names = avro.name.Names()
    try:
        for referenced in references:
            avro.schema.make_avsc_object(json.loads(referenced), names)
        return avro.schema.make_avsc_object(json.loads(schema_str), names)
    except (avro.errors.SchemaParseException, json.JSONDecodeError, TypeError, ValueError) as exc:
        raise InvalidSchema(f"Invalid schema: {exc}") from exc


def canonical(schema_str: str, references: Sequence[str] = ()) -> str:
    """The text two registrations must share to be the same schema (and get the same id).

    Whitespace and key order do not matter; docs, defaults and aliases do, as in Confluent's registry.
    """
    return json.dumps(json.loads(str(parse(schema_str, references))), sort_keys=True, separators=(",", ":"))


def _schema(schema: "str | avro.schema.Schema") -> avro.schema.Schema:
    return schema if isinstance(schema, avro.schema.Schema) else parse(schema)


def _read_problems(reader: avro.schema.Schema, writer: avro.schema.Schema, direction: str) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = ", ".join(sorted({k.value for k in result.incompatibilities}))
    details = "; ".join(sorted(_describe(m) for m in result.messages))
    where = ", ".join(sorted(result.locations))
    problems = [f"{direction}: {kinds}: {details} at {where}"]
    return problems or [f"{direction}: incompatible"]


def _describe(message: str) -> str:
    # For a missing default the checker reports only the field's name.
    return message if " " in message else f"field '{message}' has no default value"


def check(new_schema: "str | avro.schema.Schema", existing: "Sequence[str | avro.schema.Schema]",
          level: str) -> list[str]:
    """Why ``new_schema`` may not follow ``existing`` (oldest first) under ``level``; [] if it may.

    BACKWARD: the new schema reads data written with the latest one (consumers upgrade first).
    FORWARD: the latest schema reads data written with the new one (producers upgrade first).
    FULL: both. The TRANSITIVE forms check against every earlier version, not just the latest.
    """
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"unknown compatibility level {level}; one of {', '.join(LEVELS)}")
    if level == "NONE" or not existing:
        return []
    new = _schema(new_schema)
    against = existing if level.endswith("_TRANSITIVE") else existing[-1:]
    problems: list[str] = []
    for index, old_str in enumerate(against):
        old = _schema(old_str)
        label = "latest version" if len(against) == 1 else f"version #{index + 1}"
        if level.startswith(("BACKWARD", "FULL")):
            problems += [f"{p} (new schema reading data of the {label})"
                         for p in _read_problems(new, old, "BACKWARD")]
        if level.startswith(("FORWARD", "FULL")):
            problems += [f"{p} (the {label} reading data of the new schema)"
                         for p in _read_problems(old, new, "FORWARD")]
    return problems
