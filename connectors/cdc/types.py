"""PostgreSQL column types as Avro types, and their text form (pgoutput, ``::text``) as Avro values.

The mapping follows Debezium's defaults where they are simple, and says where it differs:
numeric is a string (Debezium's ``decimal.handling.mode=string``: exact, with no precision to
guess for unconstrained numerics), timestamps are microseconds since the epoch in UTC, dates are
days since the epoch, json/jsonb/uuid/interval and unknown types are their text.
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date, datetime, timezone

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
    """'2026-11-26 01:02:03.123456' (UTC by convention) -> microseconds since the epoch."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=_UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


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
    TIMESTAMP: (_TIMESTAMP_MICROS, _timestamp),
    TIMESTAMPTZ: (_TIMESTAMP_MICROS, _timestamp),
    BYTEA: ("bytes", _bytea),
    UUID: ({"type": "string", "logicalType": "uuid"}, str),
}


def avro_type(type_oid: int) -> object:
    return _TYPES.get(type_oid, ("string", str))[0]


def parser(type_oid: int) -> Callable[[str], object]:
    return _TYPES.get(type_oid, ("string", str))[1]


def type_name(type_oid: int) -> str:
    names = {BOOL: "boolean", BYTEA: "bytea", INT8: "bigint", INT2: "smallint", INT4: "integer", TEXT: "text",
             OID: "oid", JSON: "json", FLOAT4: "real", FLOAT8: "double precision", BPCHAR: "character",
             VARCHAR: "character varying", DATE: "date", TIME: "time", TIMESTAMP: "timestamp",
             TIMESTAMPTZ: "timestamp with time zone", INTERVAL: "interval", NUMERIC: "numeric", UUID: "uuid",
             JSONB: "jsonb"}
    return names.get(type_oid, f"type oid {type_oid}")
