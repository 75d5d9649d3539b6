"""Normalisation: one spelling for strings, codes and times across sources."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from streaming.sources import KAFKA_COLUMNS


def trim_strings(df: DataFrame) -> DataFrame:
    """Trim every top-level string column of the data; empty strings become null."""
    for field in df.schema.fields:
        if isinstance(field.dataType, StringType) and not field.name.startswith("_") \
                and field.name not in KAFKA_COLUMNS:
            trimmed = F.trim(F.col(field.name))
            df = df.withColumn(field.name, F.when(trimmed == "", None).otherwise(trimmed))
    return df


def upper_codes(df: DataFrame, *columns: str) -> DataFrame:
    """Codes (currencies, statuses, countries) in upper case."""
    for column in columns:
        df = df.withColumn(column, F.upper(F.col(column)))
    return df

