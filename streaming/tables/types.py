"""The column types a serving table may have: the Spark types every store maps.

A column's Spark type comes from the Avro reader schema through spark-avro (``from_avro``), or
from the pipeline's SQL transform. Each store maps every type here to its own
(:meth:`~streaming.stores.base.Store.column_type`, in the store's module), under the name the
store reports back (PostgreSQL's ``format_type``, ClickHouse's ``system.columns``, Cassandra's
``system_schema``), which is how a store compares an existing table with the schema;
``tests/unit/streaming/test_table_types.py`` checks that every store maps every type.

Avro -> Spark is spark-avro's: boolean, int, long, float, double, string (also enum, uuid),
bytes/fixed -> binary, decimal(p, s), date, timestamp-millis/-micros -> timestamp,
local-timestamp-* -> timestamp_ntz. Records, arrays and maps have no column type here: a
pipeline flattens them in its SQL transform (or drops them).
"""
from __future__ import annotations

import re

# Spark SQL type (DataType.simpleString()) -> the Avro types spark-avro reads as it (README's table).
AVRO = {"boolean": "boolean", "tinyint": "(SQL transform only)", "smallint": "(SQL transform only)", "int": "int",
        "bigint": "long", "float": "float", "double": "double", "string": "string, enum, string uuid",
        "binary": "bytes, fixed", "date": "int date", "timestamp": "long timestamp-millis, timestamp-micros",
        "timestamp_ntz": "long local-timestamp-millis, local-timestamp-micros"}
DECIMAL = re.compile(r"^decimal\((\w+),\s*(\w+)\)$")  # decimal(12,3), or decimal(p,s) in the README


def supported(spark_type: str) -> bool:
    decimal = DECIMAL.match(spark_type)
    return spark_type in AVRO or bool(decimal and decimal[1].isdigit() and decimal[2].isdigit())
