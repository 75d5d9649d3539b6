"""One type mapping for every store: a serving table's Spark type -> PostgreSQL, ClickHouse, Cassandra, Delta.

A column's Spark type comes from the Avro reader schema through spark-avro (``from_avro``), or
from the pipeline's SQL transform; each store's type is taken from this table and nowhere else, so
the four stores of one table always agree. The names are the ones each store reports back
(PostgreSQL's ``format_type``, ClickHouse's ``system.columns``, Cassandra's ``system_schema``),
which is how :mod:`streaming.tables.ddl` compares an existing table with the schema.

Avro -> Spark is spark-avro's: boolean, int, long, float, double, string (also enum, uuid),
bytes/fixed -> binary, decimal(p, s), date, timestamp-millis/-micros -> timestamp,
local-timestamp-* -> timestamp_ntz. Records, arrays and maps have no column type here: a
pipeline flattens them in its SQL transform (or drops them).
"""
from __future__ import annotations

import re
from kappa.errors import Refused

STORES = ("postgres", "clickhouse", "cassandra", "delta")

# Spark SQL type (DataType.simpleString()) -> (PostgreSQL, ClickHouse, Cassandra). Delta keeps the Spark type.
_MAPPING: dict[str, tuple[str, str, str]] = {
    "boolean": ("boolean", "Bool", "boolean"),
    "tinyint": ("smallint", "Int8", "tinyint"),
    "smallint": ("smallint", "Int16", "smallint"),
    "int": ("integer", "Int32", "int"),
    "bigint": ("bigint", "Int64", "bigint"),
    "float": ("real", "Float32", "float"),
    "double": ("double precision", "Float64", "double"),
    "string": ("text", "String", "text"),
    "binary": ("bytea", "String", "blob"),
    "date": ("date", "Date32", "date"),
    # Cassandra's timestamp holds milliseconds: microseconds of a timestamp are cut there.
    "timestamp": ("timestamp with time zone", "DateTime64(6, 'UTC')", "timestamp"),
    "timestamp_ntz": ("timestamp without time zone", "DateTime64(6)", "timestamp"),
}
_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")


class UnsupportedType(Refused, ValueError):
    """A column whose Spark type no store mapping covers (a record, array or map)."""


def supported(spark_type: str) -> bool:
    return spark_type in _MAPPING or bool(_DECIMAL.match(spark_type))


def store_type(store: str, spark_type: str) -> str:
    """The column type of ``spark_type`` in ``store`` (one of :data:`STORES`), not nullable."""
    if store == "delta":
        return spark_type
    index = ("postgres", "clickhouse", "cassandra").index(store)
    decimal = _DECIMAL.match(spark_type)
    if decimal:
        precision, scale = decimal.groups()
        return (f"numeric({precision},{scale})", f"Decimal({precision}, {scale})", "decimal")[index]
    if spark_type not in _MAPPING:
        raise UnsupportedType(f"no store type for Spark type {spark_type}")
    return _MAPPING[spark_type][index]


# Which Avro types spark-avro reads as each Spark type (for the README's table).
_AVRO = {"boolean": "boolean", "tinyint": "(SQL transform only)", "smallint": "(SQL transform only)", "int": "int",
         "bigint": "long", "float": "float", "double": "double", "string": "string, enum, string uuid",
         "binary": "bytes, fixed", "date": "int date", "timestamp": "long timestamp-millis, timestamp-micros",
         "timestamp_ntz": "long local-timestamp-millis, local-timestamp-micros"}


def rows() -> list[tuple[str, ...]]:
    """The mapping as (Avro, Spark, PostgreSQL, ClickHouse, Cassandra, Delta) rows: README's table."""
    return [(_AVRO[t], t, *m, t) for t, m in _MAPPING.items()] + [
        ("bytes decimal(p,s)", "decimal(p,s)", "numeric(p,s)", "Decimal(p, s)", "decimal", "decimal(p,s)")]
