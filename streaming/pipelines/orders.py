"""What configuration cannot say for the orders pipeline: per-customer hourly order counts and
amounts (ClickHouse ``customer_hourly``, a hand-written migration)."""
from __future__ import annotations

import pyarrow as pa

from streaming.stores.writer import PartitionContext
from streaming.transforms import features


def extra(changes: pa.Table, out: PartitionContext) -> None:
    """Per partition, on its executor: partial hourly totals, which ClickHouse's SummingMergeTree
    adds up; the partition's token makes a rewritten partition count once."""
    clickhouse = out.sinks.get("clickhouse")
    if clickhouse is None:
        return
    totals = features.hourly_totals_arrow(changes, "customer_id", "amount", "event_time")
    if totals.num_rows:
        out.retried("clickhouse", "customer_hourly", lambda: clickhouse.insert(totals, "customer_hourly", out.token))
