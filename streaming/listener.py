"""StreamingQueryListener -> Prometheus: batch duration, rows per second, offsets behind latest.

The lag is per topic-partition: the Kafka source reports, in each progress event, the offsets a
batch ended at and the latest offsets it saw; their difference is how far the job is behind.
"""
from __future__ import annotations

import json

from prometheus_client import Counter, Gauge
from pyspark.sql.streaming import StreamingQueryListener

BATCH_SECONDS = Gauge("streaming_batch_duration_seconds", "Duration of the last micro-batch", ["query"])
INPUT_RATE = Gauge("streaming_input_rows_per_second", "Input rate of the last micro-batch", ["query"])
PROCESSED_RATE = Gauge("streaming_processed_rows_per_second", "Processing rate of the last micro-batch", ["query"])
BATCHES = Counter("streaming_batches_total", "Micro-batches completed", ["query"])
ROWS = Counter("streaming_input_rows_total", "Rows read from Kafka", ["query"])
LAG = Gauge("streaming_kafka_offsets_behind_latest", "Offsets between the last batch's end and the latest offset",
            ["query", "topic", "partition"])


def offsets_behind(end_offset: str | dict | None, latest_offset: str | dict | None) -> dict[tuple[str, str], int]:
    """{(topic, partition): latest - end} from a Kafka source's progress offsets (JSON)."""
    def load(value):
        if value is None:
            return {}
        return json.loads(value) if isinstance(value, str) else value

    end, latest = load(end_offset), load(latest_offset)
    behind = {}
    for topic, partitions in latest.items():
        for partition, offset in partitions.items():
            done = end.get(topic, {}).get(partition, 0)
            behind[(topic, partition)] = max(0, int(offset) - int(done))
    return behind


class MetricsListener(StreamingQueryListener):
    def onQueryStarted(self, event) -> None:  # noqa: N802 (Spark's names)
        pass

    def onQueryProgress(self, event) -> None:  # noqa: N802
        progress = event.progress
        name = progress.name or str(progress.id)
        BATCH_SECONDS.labels(name).set(progress.batchDuration / 1000.0)
        INPUT_RATE.labels(name).set(progress.inputRowsPerSecond or 0.0)
        PROCESSED_RATE.labels(name).set(progress.processedRowsPerSecond or 0.0)
        BATCHES.labels(name).inc()
        ROWS.labels(name).inc(progress.numInputRows)
        for source in progress.sources:
            for (topic, partition), behind in offsets_behind(source.endOffset, source.latestOffset).items():
                LAG.labels(name, topic, partition).set(behind)

    def onQueryIdle(self, event) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        pass
