"""Customers: CDC changes of the customers table -> the latest row per customer in every sink.

Deletes (op d) become tombstones: removed in Cassandra, ``_deleted`` in PostgreSQL and ClickHouse
(hidden by the ``*_current`` views and by ``FINAL``), and kept as a change in the lake.
"""
from __future__ import annotations

from pyspark.sql import DataFrame

from streaming.jobs.runner import BatchContext, JobDefinition
from streaming.tables import CUSTOMERS
from streaming.transforms import changes, normalise
from streaming.transforms.validate import Rule, check

RULES = [*Rule.required("customer_id", "event_id"), Rule.matches("country", "^[A-Z]{2}$")]


def transform(decoded: DataFrame, ctx: BatchContext) -> DataFrame:
    rows = changes.from_envelope(decoded)
    rows = normalise.upper_codes(normalise.trim_strings(rows), "country")
    return check(rows, RULES)


JOB = JobDefinition(table=CUSTOMERS, transform=transform)

if __name__ == "__main__":
    from streaming.jobs.main import main

    main(JOB, "Customers (CDC): Kafka -> decode -> fold -> Cassandra, S3 lake, ClickHouse, PostgreSQL")
