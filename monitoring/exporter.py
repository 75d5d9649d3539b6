"""The lag exporter: every streaming job's consumer lag as Prometheus metrics, measured at each scrape.

    kappa lag-exporter [--pipeline FILE ...] [--metrics-port 19308]

For each pipeline (default: every file in streaming/pipelines) it measures the job that writes the
version readers see (its query name and checkpoint follow a Kappa rebuild's cut-over), whether
that job runs or not (:mod:`monitoring.lag`):

- ``kappa_streaming_lag_offsets{job, topic, partition}``: records not processed yet;
- ``kappa_streaming_lag_seconds{job, topic, partition}``: the age of the oldest of them;
- ``kappa_lag_exporter_errors_total{job}``: measurements that failed (Kafka or the checkpoint
  unreachable); that job's series are missing from that scrape.
"""
from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily

from monitoring.lag import LagProbe
from kappa.settings import Settings
from streaming.jobs import pipeline as pipeline_files

log = logging.getLogger(__name__)
ERRORS = Counter("kappa_lag_exporter_errors_total", "Lag measurements that failed, per job", ["pipeline"])
LABELS = ["pipeline", "topic", "partition"]


class LagCollector:
    """A Prometheus collector: measures when scraped, so a value is never older than the scrape."""

    def __init__(self, settings: Settings, pipelines: list[Path]) -> None:
        self.settings, self.pipelines = settings, pipelines
        self.probe = LagProbe(settings)

    def describe(self):
        """The families without measuring (what the registry asks at registration)."""
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        offsets = GaugeMetricFamily("kappa_streaming_lag_offsets",
                                    "Records of the topic-partition the job has not processed yet (from its "
                                    "checkpoint and the end offset)", labels=LABELS)
        seconds = GaugeMetricFamily("kappa_streaming_lag_seconds",
                                    "Age of the oldest record the job has not processed yet (0: none waits)",
                                    labels=LABELS)
        return offsets, seconds

    def collect(self):
        offsets, seconds = self._families()
        for path in self.pipelines:
            job = path.stem
            try:
                pipeline = pipeline_files.load(path).as_version(self.settings)
                job = pipeline.name
                ERRORS.labels(job)  # 0 until a measurement fails
                for lag in self.probe.measure(pipeline.name, pipeline.topic, pipeline.checkpoint):
                    labels = [lag.job, lag.topic, str(lag.partition)]
                    offsets.add_metric(labels, lag.offsets)
                    seconds.add_metric(labels, round(lag.seconds, 3))
            except Exception as exc:  # the other jobs are still measured
                ERRORS.labels(job).inc()
                log.warning("lag of %s (%s) not measured: %s: %s", job, path, type(exc).__name__,
                            str(exc).splitlines()[0][:300] if str(exc) else "")
        yield offsets
        yield seconds


def register(settings: Settings, pipelines: list[Path]) -> LagCollector:
    collector = LagCollector(settings, pipelines)
    REGISTRY.register(collector)
    return collector
