"""The serving tables the jobs maintain, as every sink sees them, derived from the data itself.

A table holds the latest state per key, a ``_version`` (the source position that produced it) and
a ``_deleted`` tombstone flag; the lake keeps every change instead. Its columns are not written by
hand: :func:`derive` takes them from the job's transformed stream, whose types come from the Avro
reader schema in the registry (through spark-avro) and from the pipeline's SQL. Each store then
makes its table from it (:meth:`streaming.stores.base.Store.ensure_table`): created when missing,
given the columns a newer schema brings.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import StructType

from streaming.sources import KAFKA_COLUMNS
from streaming.tables.types import supported
from kappa.errors import Refused

VERSION, DELETED = "_version", "_deleted"
# Columns of a transformed stream that are not the table's: Kafka's record, the decoder's and the
# validator's bookkeeping, the envelope's source metadata, and the pipeline's own columns.
NOT_COLUMNS = KAFKA_COLUMNS | {"_schema_id", "_decode_error", "_error", "source", VERSION, DELETED}


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    # (column, Spark SQL type), the key first; _version and _deleted are added by the pipeline.
    columns: tuple[tuple[str, str], ...]

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def all_columns(self) -> list[str]:
        return [*self.column_names, VERSION, DELETED]

    @property
    def value_columns(self) -> list[str]:
        return [c for c in self.all_columns if c not in self.key]

    def type_of(self, column: str) -> str:
        return dict(self.columns)[column]


class TableError(Refused, ValueError):
    """The transformed stream cannot make this table: the message names the job, column and fix."""


def derive(job: str, name: str, key: tuple[str, ...], schema: StructType) -> Table:
    """The serving table of ``job`` from its transformed stream's schema: every column but
    :data:`NOT_COLUMNS`, in the stream's order with the key first."""
    fields = {f.name: f.dataType.simpleString() for f in schema.fields if f.name not in NOT_COLUMNS}
    missing = [k for k in key if k not in fields]
    if not key or missing:
        raise TableError(f"pipeline {job}: the key {list(key)} of table {name} is not among its columns "
                         f"{sorted(fields)}: set 'key' to columns of the topic's schema (or of the SQL transform)")
    if "event_time" not in fields:
        raise TableError(f"pipeline {job}: table {name} has no event_time column, which the lake partitions by: "
                         "every event carries one (schemas/); select it in the SQL transform")
    for column, spark_type in fields.items():
        if not supported(spark_type):
            raise TableError(f"pipeline {job}: column {column} of table {name} is a {spark_type}, which no store "
                             "has a column type for: flatten it (or drop it) in the pipeline's SQL transform")
    ordered = [*key, *(c for c in fields if c not in key)]
    return Table(name, tuple(key), tuple((c, fields[c]) for c in ordered))
