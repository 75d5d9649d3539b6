"""Orders: API order events -> validated, normalised, enriched with the customer -> every sink.

Also derives per-customer hourly order counts and amounts (ClickHouse ``customer_hourly``).
"""
from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from streaming.jobs.runner import BatchContext, JobDefinition
from streaming.sinks.writer import PartitionContext
from streaming.tables import ORDERS
from streaming.transforms import enrich, features, normalise
from streaming.transforms.changes import DELETED, VERSION
from streaming.transforms.validate import Rule, check

STATUSES = ["NEW", "PAID", "SHIPPED", "CANCELLED"]
RULES = [
    *Rule.required("order_id", "customer_id", "amount", "updated_at", "event_id"),
    Rule.between("amount", 0, 1_000_000),
    Rule.one_of("status", STATUSES),
    Rule.matches("currency", "^[A-Z]{3}$"),
]


def load_customers(ctx: BatchContext) -> DataFrame:
    """The customers dimension: the reporting table the customers job keeps in PostgreSQL."""
    pg = ctx.settings.postgres
    return (ctx.spark.read.format("jdbc").option("url", pg.jdbc_url).option("user", pg.user)
            .option("password", pg.password).option("driver", "org.postgresql.Driver")
            .option("dbtable", f"{ctx.config.namespace}.customers_current").load()
            .select("customer_id", "segment", "country"))


def transform(decoded: DataFrame, ctx: BatchContext) -> DataFrame:
    df = normalise.upper_codes(normalise.trim_strings(decoded), "currency", "status")
    if "channel" not in df.columns:  # written before the field existed and read with an older reader
        df = df.withColumn("channel", F.lit(None).cast("string"))
    checked = check(df, RULES)
    customers = ctx.reference.get("customers")
    if customers is None:
        customers = checked.sparkSession.createDataFrame([], "customer_id bigint, segment string, country string")
    enriched = enrich.with_sql(checked, "enrich_orders.sql", customers=customers)
    return enriched.withColumn(VERSION, F.unix_micros("updated_at")).withColumn(DELETED, F.lit(False))


def hourly_features(changes: pa.Table, out: PartitionContext) -> None:
    """Per partition, on its executor: partial hourly totals, which ClickHouse's SummingMergeTree
    adds up; the partition's token makes a rewritten partition count once."""
    clickhouse = out.sinks.get("clickhouse")
    if clickhouse is None:
        return
    totals = features.hourly_totals_arrow(changes, "customer_id", "amount", "event_time")
    if totals.num_rows:
        out.retried("clickhouse", "customer_hourly", lambda: clickhouse.insert(totals, "customer_hourly", out.token))


JOB = JobDefinition(table=ORDERS, transform=transform, extra=hourly_features, reference={"customers": load_customers})

if __name__ == "__main__":
    from streaming.jobs.main import main

    main(JOB, "Orders: Kafka -> decode -> clean -> enrich -> Cassandra, S3 lake, ClickHouse, PostgreSQL")
