"""The one type mapping, and the README's table of it."""
from pathlib import Path

import pytest
from pyspark.sql import types as T

from streaming.tables import TableError, derive
from streaming import stores
from streaming.tables.types import AVRO

README = Path(__file__).resolve().parents[3] / "README.md"


def _schema(**columns: T.DataType) -> T.StructType:
    return T.StructType([T.StructField(name, data_type) for name, data_type in columns.items()])


def test_readme_shows_the_mapping_the_code_applies():
    text = README.read_text()
    for row in stores.type_table():
        cells = [row[0]] + [f"`{c}`" for c in row[1:]]
        assert "| " + " | ".join(cells) + " |" in text, row


def test_decimals_keep_precision_and_scale():
    assert [stores.get(s).column_type("decimal(12,3)") for s in ("postgres", "clickhouse", "cassandra", "lake")] == [
        "numeric(12,3)", "Decimal(12, 3)", "decimal", "decimal(12,3)"]


def test_every_store_maps_every_column_type():
    for name in stores.names():
        for spark_type in [*AVRO, "decimal(38,10)"]:
            assert stores.get(name).column_type(spark_type), (name, spark_type)


def test_derive_puts_the_key_first_and_leaves_out_what_is_not_a_column():
    schema = _schema(key=T.BinaryType(), value=T.BinaryType(), topic=T.StringType(), event_id=T.StringType(),
                     event_time=T.TimestampType(), source=T.StructType([T.StructField("lsn", T.LongType())]),
                     name=T.StringType(), id=T.LongType(), _version=T.LongType(), _error=T.StringType())
    table = derive("job", "things", ("id",), schema)
    assert table.columns == (("id", "bigint"), ("event_id", "string"), ("event_time", "timestamp"),
                             ("name", "string"))


def test_derive_names_the_column_a_store_cannot_hold_and_the_fix():
    schema = _schema(id=T.LongType(), event_time=T.TimestampType(), tags=T.ArrayType(T.StringType()))
    with pytest.raises(TableError, match="pipeline j: column tags of table t is a array<string>.*flatten it"):
        derive("j", "t", ("id",), schema)
    with pytest.raises(TableError, match=r"the key \['nope'\] of table t is not among its columns"):
        derive("j", "t", ("nope",), _schema(id=T.LongType(), event_time=T.TimestampType()))
