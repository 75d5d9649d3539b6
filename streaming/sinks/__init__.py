"""Sinks: one module per store, each writing one micro-batch (an Arrow table) idempotently.

Every sink's ``write(table, batch_id, spec)`` may run again for the same batch after a crash
(foreachBatch is at least once, and a replayed batch keeps its id), so each write is idempotent:
Cassandra and PostgreSQL by a version guard, ClickHouse by a deduplication token per
(query, batch, table), the lake by deterministic object names per batch.
"""
