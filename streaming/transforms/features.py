"""Derived features: per-key counts and amounts over event-time windows."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def windowed_totals(df: DataFrame, key: str, amount: str, time: str, window: str = "1 hour") -> DataFrame:
    """Per key and ``window`` of ``time``: how many rows and how much ``amount``.

    Applied per micro-batch, the partial totals add up in a summing store (ClickHouse's
    SummingMergeTree): each batch contributes once thanks to the sink's deduplication token.
    """
    return (df.groupBy(F.col(key), F.window(time, window).alias("w"))
              .agg(F.count(F.lit(1)).alias("events"), F.sum(amount).alias("amount"))
              .select(key, F.col("w.start").alias("window_start"), "events", "amount"))
