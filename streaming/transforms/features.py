"""Derived features: per-key counts and amounts over event-time windows."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
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


def hourly_totals_arrow(table: pa.Table, key: str, amount: str, time: str) -> pa.Table:
    """:func:`windowed_totals` over one hour, for one partition's changes as Arrow (on its executor)."""
    if table.num_rows == 0:
        return pa.table({key: pa.array([], pa.int64()), "window_start": pa.array([], pa.timestamp("us", "UTC")),
                         "events": pa.array([], pa.uint64()), "amount": pa.array([], pa.float64())})
    hours = pc.floor_temporal(table[time], unit="hour")
    grouped = (pa.table({key: table[key], "window_start": hours, amount: table[amount]})
               .group_by([key, "window_start"]).aggregate([(amount, "count"), (amount, "sum")]))
    return pa.table({key: grouped[key], "window_start": grouped["window_start"],
                     "events": pc.cast(grouped[f"{amount}_count"], pa.uint64()),
                     "amount": grouped[f"{amount}_sum"]})
