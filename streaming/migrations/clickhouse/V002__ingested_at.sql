-- When each row landed: freshness of the analytics tables (event_time -> _ingested_at).
ALTER TABLE {namespace}.orders ADD COLUMN IF NOT EXISTS _ingested_at DateTime64(3, 'UTC') MATERIALIZED now64(3);
ALTER TABLE {namespace}.customers ADD COLUMN IF NOT EXISTS _ingested_at DateTime64(3, 'UTC') MATERIALIZED now64(3);
