"""Enrichment: joins with reference data, written as Spark SQL files or DataFrame code."""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def with_sql(df: DataFrame, sql_file: str, **reference: DataFrame) -> DataFrame:
    """Run ``streaming/sql/<sql_file>`` with ``{events}`` bound to ``df`` and ``{name}`` to each reference.

    Spark binds the DataFrames itself (parameterised ``spark.sql``), so no temporary view leaks
    between concurrent batches; reference data is broadcast, as dimensions are small.
    """
    text = (SQL_DIR / sql_file).read_text()
    frames = {name: F.broadcast(frame) for name, frame in reference.items()}
    return df.sparkSession.sql(text, events=df, **frames)
