"""PostgreSQL column types as Avro types, and their text form (pgoutput, ``::text``) as Avro values.

The mapping follows Debezium's defaults where they are simple, and says where it differs:
``numeric(p, s)`` is an Avro ``decimal(p, s)`` (Debezium's ``decimal.handling.mode=precise``), an
unconstrained ``numeric`` (or one wider than Spark's 38 digits) its exact text, as Debezium's
``string`` mode does, since it has no scale to fix; ``timestamptz`` is ``timestamp-micros`` (UTC),
``timestamp`` is ``local-timestamp-micros`` (a wall-clock time with no zone, as in PostgreSQL);
dates are days since the epoch; ``char(n)``, json/jsonb/uuid/interval and unknown types are their
text, exactly as PostgreSQL's output function prints them (``char(n)`` keeps its padding).
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal

BOOL, BYTEA, INT8, INT2, INT4, TEXT, OID, JSON = 16, 17, 20, 21, 23, 25, 26, 114
FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIME = 700, 701, 1042, 1043, 1082, 1083
TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC, UUID, JSONB = 1114, 1184, 1186, 1700, 2950, 3802

_EPOCH_DATE = date(1970, 1, 1).toordinal()
_UTC = timezone.utc


def _bool(text: str) -> bool:
    return text == "t"


def _float(text: str) -> float:
    return float(text)  # handles NaN, Infinity, -Infinity as PostgreSQL prints them


def _date(text: str) -> int:
    return date.fromisoformat(text).toordinal() - _EPOCH_DATE


def _timestamp(text: str) -> int:
    """'2026-11-26 01:02:03.123456+00' -> microseconds since the epoch; a text with no zone (``timestamp``)
    counts on its own clock, which is what local-timestamp-micros means."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=_UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _decimal(text: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"{text} has no Avro decimal form")
    return value


MAX_DECIMAL_PRECISION = 38  # Spark's DecimalType, and so every store's column


def decimal_precision(type_modifier: int) -> tuple[int, int] | None:
    """(precision, scale) of a ``numeric(p, s)`` column's type modifier; None when unconstrained."""
    if type_modifier < 4:
        return None
    packed = type_modifier - 4
    precision, scale = (packed >> 16) & 0xFFFF, packed & 0xFFFF
    if scale > precision or precision > MAX_DECIMAL_PRECISION:  # negative scales (PG 15+) pack above p
        return None
    return precision, scale


def _bytea(text: str) -> bytes:
    return bytes.fromhex(text[2:]) if text.startswith("\\x") else base64.b64decode(text)


_TIMESTAMP_MICROS = {"type": "long", "logicalType": "timestamp-micros"}

# oid -> (Avro type, text -> value)
_TYPES: dict[int, tuple[object, Callable[[str], object]]] = {
    BOOL: ("boolean", _bool),
    INT2: ("int", int),
    INT4: ("int", int),
    INT8: ("long", int),
    OID: ("long", int),
    FLOAT4: ("float", _float),
    FLOAT8: ("double", _float),
    DATE: ({"type": "int", "logicalType": "date"}, _date),
    TIMESTAMP: ({"type": "long", "logicalType": "local-timestamp-micros"}, _timestamp),
    TIMESTAMPTZ: (_TIMESTAMP_MICROS, _timestamp),
    BYTEA: ("bytes", _bytea),
    UUID: ({"type": "string", "logicalType": "uuid"}, str),
}


def _entry(type_oid: int, type_modifier: int) -> tuple[object, Callable[[str], object]]:
    if type_oid == NUMERIC:
        decimal = decimal_precision(type_modifier)
        if decimal is not None:
            precision, scale = decimal
            return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}, _decimal
    return _TYPES.get(type_oid, ("string", str))


def avro_type(type_oid: int, type_modifier: int = -1) -> object:
    return _entry(type_oid, type_modifier)[0]


def parser(type_oid: int, type_modifier: int = -1) -> Callable[[str], object]:
    """Text as PostgreSQL's output function prints it -> the Avro value; ValueError if it has none."""
    return _entry(type_oid, type_modifier)[1]


def type_name(type_oid: int) -> str:
    names = {BOOL: "boolean", BYTEA: "bytea", INT8: "bigint", INT2: "smallint", INT4: "integer", TEXT: "text",
             OID: "oid", JSON: "json", FLOAT4: "real", FLOAT8: "double precision", BPCHAR: "character",
             VARCHAR: "character varying", DATE: "date", TIME: "time", TIMESTAMP: "timestamp",
             TIMESTAMPTZ: "timestamp with time zone", INTERVAL: "interval", NUMERIC: "numeric", UUID: "uuid",
             JSONB: "jsonb"}
    return names.get(type_oid, f"type oid {type_oid}")
