"""The stores: one module per store, each owning every verb of its store, and their registry.

A store module (``postgres``, ``clickhouse``, ``cassandra``, ``lake``) holds one
:class:`~streaming.stores.base.Store` (the verbs on the driver: endpoint, column types, table,
migrations, versions) and its :class:`~streaming.stores.base.Sink` (the executors' client, which
writes one partition of a batch idempotently: Cassandra and PostgreSQL by a version guard,
ClickHouse by a deduplication token per (query, batch, partition, table), the lake by Delta's
idempotent commit per (query, batch)). Everything else asks the registry for a store by the name a
pipeline file's ``sinks`` gives it; adding a store is a module and a line in :data:`REGISTRY`.

Beside them: ``writer`` (a batch into every store from the executors, the one write path of live
jobs and replay), ``dead_letters`` (the ``<topic>.dlq`` topic) and ``archive`` (the raw records
kept in the lake for replays older than Kafka's retention); they are not serving stores.
"""
from __future__ import annotations

import importlib

from kappa.errors import Refused
from streaming.stores.base import Store

# name -> "module:Store class". The order is the order of a cut-over (each store's readers switch
# in turn) and of a partition's writes; PostgreSQL, which holds the versions record, comes last.
REGISTRY: dict[str, str] = {
    "lake": "streaming.stores.lake:LakeStore",
    "clickhouse": "streaming.stores.clickhouse:ClickHouseStore",
    "cassandra": "streaming.stores.cassandra:CassandraStore",
    "postgres": "streaming.stores.postgres:PostgresStore",
}
_loaded: dict[str, Store] = {}  # by "module:class"


def get(name: str) -> Store:
    """The store named ``name`` (as a pipeline's ``sinks`` names it)."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise Refused(f"unknown store {name!r}; known: {', '.join(REGISTRY)}")
    if spec not in _loaded:
        module, _, cls = spec.partition(":")
        _loaded[spec] = getattr(importlib.import_module(module), cls)()
    return _loaded[spec]


def names() -> tuple[str, ...]:
    """Every store, in the registry's order."""
    return tuple(REGISTRY)


def serving() -> tuple[str, ...]:
    """The stores written per partition from the executors (all but the lake), in order."""
    return tuple(name for name in REGISTRY if get(name).serving)


def type_table() -> list[tuple[str, ...]]:
    """Every column type as (Avro, Spark, then each store's type, in the registry's order): README's table."""
    from streaming.tables.types import AVRO

    every = [*AVRO.items(), ("decimal(p,s)", "bytes decimal(p,s)")]
    return [(avro, spark, *(get(name).column_type(spark) for name in names())) for spark, avro in every]
