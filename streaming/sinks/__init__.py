"""Sinks: one module per store, each writing one partition of a batch (an Arrow table) idempotently.

``base`` is the contract (a :class:`~streaming.sinks.base.Sink` writes a partition; the base owns
retries and the (query, batch, partition) token), ``writer`` runs it on the executors and commits
the Delta lake (``lake``) last. A partition may be written again after a crash (foreachBatch is at
least once, and a rerun batch keeps its id and its partitions), so each write is idempotent:
Cassandra and PostgreSQL by a version guard, ClickHouse by a deduplication token per
(query, batch, partition, table), the lake by Delta's idempotent commit per (query, batch).
"""
