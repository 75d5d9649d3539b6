"""Duplicate events (same ``event_id``, e.g. a connector's re-send) dropped within a watermark."""
from __future__ import annotations

from pyspark.sql import DataFrame


def within_watermark(df: DataFrame, id_column: str, time_column: str, delay: str) -> DataFrame:
    """Streaming: keep the first event per id seen within ``delay`` of the event-time watermark.

    On a static DataFrame (batch replay) the watermark does not apply and every duplicate is dropped.
    """
    if df.isStreaming:
        return df.withWatermark(time_column, delay).dropDuplicatesWithinWatermark([id_column])
    return df.dropDuplicates([id_column])
