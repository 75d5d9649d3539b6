"""Changes to rows: CDC envelopes and event streams folded to the latest state per key.

Every sink stores the latest state of each key with a version (the source position), and a
deleted row as a tombstone (``_deleted``) so that an older change replayed later cannot
resurrect it. Within a micro-batch only the newest change per key matters.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

VERSION = "_version"
DELETED = "_deleted"


def from_envelope(df: DataFrame) -> DataFrame:
    """Debezium-style envelope columns (before, after, op, source, ...) -> the row image's columns,
    ``_version`` (2 x LSN, + 1 for a streamed change) and ``_deleted`` (op d); other columns are kept."""
    envelope = ["before", "after", "op", "source", "ts_ms"]
    image = F.when(F.col("op") == "d", F.col("before")).otherwise(F.col("after"))
    kept = [c for c in df.columns if c not in envelope]
    # The first change streamed after a snapshot can sit exactly at the snapshot's LSN (the slot's
    # consistent point): at equal LSN a streamed change must beat a snapshot read.
    streamed = F.when(F.col("source.snapshot") == "false", 1).otherwise(0)
    version = F.col("source.lsn") * 2 + streamed
    return df.select(*kept, image.alias("_image"), version.alias(VERSION),
                     (F.col("op") == "d").alias(DELETED)).select(*kept, "_image.*", VERSION, DELETED)


def latest_per_key(df: DataFrame, keys: list[str], order: list[str] | None = None) -> DataFrame:
    """The newest change per key (highest ``_version``, ties broken by ``order`` columns)."""
    ordering = [F.col(VERSION).desc()] + [F.col(c).desc() for c in (order or [])]
    window = Window.partitionBy(*keys).orderBy(*ordering)
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


def latest_per_key_arrow(table: pa.Table, keys: list[str], order: list[str] | None = None) -> pa.Table:
    """:func:`latest_per_key` for one partition of a batch as Arrow, on its executor (keys never span partitions).

    Rows keep their order. A batch where every key occurs once (the common case) is returned as is.
    """
    if table.num_rows == 0 or table.group_by(keys).aggregate([]).num_rows == table.num_rows:
        return table
    ordering = [(k, "ascending") for k in keys] + [(c, "descending") for c in [VERSION, *(order or [])]]
    by_key = pc.sort_indices(table.select([k for k, _ in ordering]), sort_keys=ordering)
    sorted_keys = table.select(keys).take(by_key)
    # The first row of each run of equal keys (keys are never null) is that key's newest change.
    boundary = None
    for key in keys:
        column = sorted_keys[key].combine_chunks()
        differs = pc.not_equal(column[1:], column[:-1])
        boundary = differs if boundary is None else pc.or_(boundary, differs)
    newest = pc.filter(by_key, pa.concat_arrays([pa.array([True]), boundary]))
    return table.take(pc.take(newest, pc.array_sort_indices(newest)))
