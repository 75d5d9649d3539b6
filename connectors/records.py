"""Source records (JSON objects, CSV rows, Parquet rows) as events of an Avro contract.

A contract's fields are the envelope (``event_id``, ``event_time``, ``source``) plus the entity's
own fields; :class:`RecordMapper` fills the entity's fields from a source record by name (or
through a field map), coercing text and JSON values to the Avro type. A record that cannot be
coerced raises :class:`InvalidRecord` with a reason that names the field, for the dead-letter queue.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from typing import Any
from kappa.errors import Refused

ENVELOPE_FIELDS = ("event_id", "event_time", "source")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class InvalidRecord(Refused, ValueError):
    """A source record that does not fit the contract; the message is the reason."""


def event_id(*parts: object) -> str:
    """A deterministic id of a source change: 128 bits of BLAKE2b over its identifying parts."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def namespace_for(topic: str) -> str:
    """The topic as an Avro namespace: each part letters, digits and _, not starting with a digit."""
    def part(text: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_]", "_", text)
        return f"_{name}" if not name or name[0].isdigit() else name

    return ".".join(part(p) for p in topic.split("."))


def epoch_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int((moment - _EPOCH).total_seconds() * 1000)
    if isinstance(value, date):
        return int((datetime(value.year, value.month, value.day, tzinfo=timezone.utc) - _EPOCH).total_seconds() * 1000)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return epoch_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


def epoch_days(value: Any) -> int:
    """An Avro date: days since 1970-01-01, from a date, or an ISO date text."""
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        value = date.fromisoformat(str(value).strip())
    return value.toordinal() - date(1970, 1, 1).toordinal()


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "1", "yes"):
        return True
    if text in ("false", "f", "0", "no"):
        return False
    raise ValueError(f"{value!r} is not a boolean")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    return int(str(value).strip()) if not isinstance(value, int) else value


def _double(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return float(value)


def _string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _coercer(avro_type: Any) -> tuple[Callable[[Any], Any], bool]:
    """(value -> Avro value, nullable) for a field type of the contract."""
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        if len(branches) != 1:
            raise TypeError(f"unions other than [null, T] are not mapped from source records: {avro_type}")
        return _coercer(branches[0])[0], "null" in avro_type
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical in ("timestamp-millis", "local-timestamp-millis"):
            return epoch_ms, False
        if logical in ("timestamp-micros", "local-timestamp-micros"):
            return (lambda v: epoch_ms(v) * 1000), False
        if logical == "date":
            return epoch_days, False
        if avro_type.get("type") == "enum":
            symbols = set(avro_type["symbols"])

            def enum(value: Any) -> str:
                text = str(value).strip()
                if text not in symbols:
                    raise ValueError(f"{text!r} is not one of {sorted(symbols)}")
                return text
            return enum, False
        return _coercer(avro_type["type"])[0], False
    return {"int": _integer, "long": _integer, "float": _double, "double": _double,
            "boolean": _boolean, "string": _string, "bytes": lambda v: v if isinstance(v, bytes) else str(v).encode()
            }[avro_type], False


class RecordMapper:
    """Fills a contract's entity fields from source records."""

    def __init__(self, schema: Mapping[str, Any], field_map: Mapping[str, str] | None = None) -> None:
        field_map = dict(field_map or {})
        self.fields: list[tuple[str, str, Callable[[Any], Any], bool, bool, Any]] = []
        for field in schema["fields"]:
            if field["name"] in ENVELOPE_FIELDS:
                continue
            coerce, nullable = _coercer(field["type"])
            self.fields.append((field["name"], field_map.get(field["name"], field["name"]), coerce, nullable,
                                "default" in field, field.get("default")))

    def entity(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The contract's entity fields of ``record``; raises InvalidRecord naming the field."""
        if not isinstance(record, Mapping):
            raise InvalidRecord(f"not an object: {type(record).__name__}")
        out: dict[str, Any] = {}
        for name, source, coerce, nullable, has_default, default in self.fields:
            value = record.get(source)
            if value is None or value == "":
                if nullable:
                    out[name] = None
                elif has_default:
                    out[name] = default
                else:
                    raise InvalidRecord(f"missing required field {source!r}" +
                                        (f" (contract field {name!r})" if source != name else ""))
                continue
            try:
                out[name] = coerce(value)
            except (ValueError, TypeError, OverflowError) as exc:
                raise InvalidRecord(f"field {source!r}: {exc}") from None
        return out
