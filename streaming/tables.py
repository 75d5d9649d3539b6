"""The serving tables the jobs maintain, as every sink sees them.

Each holds the latest state per key, a ``_version`` (the source position that produced it) and a
``_deleted`` tombstone flag; the lake keeps every change instead. Their DDL lives in versioned
migrations (``streaming/migrations/<store>/``); the columns here must match them.
"""
from __future__ import annotations

from dataclasses import dataclass


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
        return [*self.column_names, "_version", "_deleted"]

    @property
    def value_columns(self) -> list[str]:
        return [c for c in self.all_columns if c not in self.key]


ORDERS = Table("orders", ("order_id",), (
    ("order_id", "bigint"), ("customer_id", "bigint"), ("status", "string"), ("amount", "double"),
    ("currency", "string"), ("channel", "string"), ("customer_segment", "string"), ("customer_country", "string"),
    ("updated_at", "timestamp"), ("event_id", "string"), ("event_time", "timestamp"),
))

CUSTOMERS = Table("customers", ("customer_id",), (
    ("customer_id", "bigint"), ("name", "string"), ("segment", "string"), ("country", "string"),
    ("updated_at", "timestamp"), ("event_id", "string"), ("event_time", "timestamp"),
))
