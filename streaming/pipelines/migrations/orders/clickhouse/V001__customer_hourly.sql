-- The orders pipeline's rolling features: orders and amount per customer and hour, summed across
-- micro-batches by its extra hook (orders.py). Serving tables are not migrations: they derive from the schema.
CREATE TABLE IF NOT EXISTS {namespace}.customer_hourly (
    customer_id   Int64,
    window_start  DateTime64(6, 'UTC'),
    events        UInt64,
    amount        Float64
) ENGINE = SummingMergeTree((events, amount))
ORDER BY (customer_id, window_start)
SETTINGS non_replicated_deduplication_window = 10000;
