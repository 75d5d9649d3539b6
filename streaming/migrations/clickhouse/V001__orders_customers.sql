-- Analytics tables. ReplacingMergeTree keeps the row with the highest _version per key and,
-- with FINAL, hides rows whose newest version is a delete (_deleted = 1).
CREATE TABLE IF NOT EXISTS {namespace}.orders (
    order_id          Int64,
    customer_id       Nullable(Int64),
    status            Nullable(String),
    amount            Nullable(Float64),
    currency          Nullable(String),
    channel           Nullable(String),
    customer_segment  Nullable(String),
    customer_country  Nullable(String),
    updated_at        Nullable(DateTime64(6, 'UTC')),
    event_id          Nullable(String),
    event_time        Nullable(DateTime64(6, 'UTC')),
    _version          Int64,
    _deleted          UInt8
) ENGINE = ReplacingMergeTree(_version, _deleted)
ORDER BY order_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {namespace}.customers (
    customer_id  Int64,
    name         Nullable(String),
    segment      Nullable(String),
    country      Nullable(String),
    updated_at   Nullable(DateTime64(6, 'UTC')),
    event_id     Nullable(String),
    event_time   Nullable(DateTime64(6, 'UTC')),
    _version     Int64,
    _deleted     UInt8
) ENGINE = ReplacingMergeTree(_version, _deleted)
ORDER BY customer_id
SETTINGS non_replicated_deduplication_window = 10000;

-- Rolling features: orders and amount per customer and hour, summed across micro-batches.
CREATE TABLE IF NOT EXISTS {namespace}.customer_hourly (
    customer_id   Int64,
    window_start  DateTime64(6, 'UTC'),
    events        UInt64,
    amount        Float64
) ENGINE = SummingMergeTree((events, amount))
ORDER BY (customer_id, window_start)
SETTINGS non_replicated_deduplication_window = 10000;
