"""Enrichment in SQL: a pipeline's SQL file run over its rows, with its reference data bound by name."""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def with_sql(df: DataFrame, sql_file: Path, **reference: DataFrame) -> DataFrame:
    """Run ``sql_file`` with ``{events}`` bound to ``df`` and ``{name}`` to each reference.

    Spark binds the DataFrames itself (parameterised ``spark.sql``), so no temporary view leaks
    between concurrent batches; reference data is broadcast, as dimensions are small.
    """
    frames = {name: F.broadcast(frame) for name, frame in reference.items()}
    return df.sparkSession.sql(Path(sql_file).read_text(), events=df, **frames)
