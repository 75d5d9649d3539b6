"""The platform's Grafana dashboards, as code (Grafana's grafana-foundation-sdk), lag first.

    python -m monitoring dashboards          # writes monitoring/grafana/dashboards/<uid>.json

The JSON files are what Grafana imports (or provisions: monitoring/grafana/provisioning); a test
fails when they differ from what this module builds, and when a panel reads a metric the platform
does not export. Every panel takes its Prometheus from the ``datasource`` variable, so the files
import into any Grafana with any Prometheus data source.
"""
from __future__ import annotations

import json
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

HERE = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"


def _panel(title: str, unit: str, *queries: tuple[str, str], description: str = "", width: int = 12) -> Timeseries:
    panel = (Timeseries().title(title).unit(unit).min(0).datasource(PROMETHEUS).height(8).span(width)
             .description(description))
    for ref, (expr, legend) in zip("ABCDEFGH", queries):
        panel = panel.with_target(Dataquery().ref_id(ref).datasource(PROMETHEUS).expr(expr).legend_format(legend))
    return panel


def _variables(board: Dashboard, label_source: str, label: str) -> Dashboard:
    return (board.with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
            .with_variable(QueryVariable(label).label(label).datasource(PROMETHEUS)
                           .query(f"label_values({label_source}, {label})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                           .multi(True).include_all(True).all_value(".*")))


def streaming() -> Dashboard:
    """Streaming jobs: lag first (records and seconds, per job then per partition), then
    throughput, batch duration, dead letters, errors and sink latency."""
    selected = 'pipeline=~"$pipeline"'
    board = (Dashboard("Kappa / Streaming jobs").uid("kappa-streaming").tags(["kappa", "streaming", "lag"])
             .refresh("30s").time("now-1h", "now").timezone("browser"))
    board = _variables(board, "kappa_streaming_lag_offsets", "pipeline")
    return (board
            .with_row(Row("Lag"))
            .with_panel(_panel("Lag per pipeline (records)", "short",
                               (f"kappa_pipeline:streaming_lag_offsets:sum{{{selected}}}", "{{pipeline}}"),
                               description="Records not processed yet, measured outside the job (lag exporter): "
                                           "it grows while a job is down."))
            .with_panel(_panel("Time lag per pipeline", "s", (f"kappa_pipeline:streaming_lag_seconds:max{{{selected}}}", "{{pipeline}}"),
                               description="Age of the oldest record not processed yet."))
            .with_panel(_panel("Lag per partition (records)", "short",
                               (f"kappa_streaming_lag_offsets{{{selected}}}", "{{pipeline}} {{topic}}/{{partition}}")))
            .with_panel(_panel("Time lag per partition", "s",
                               (f"kappa_streaming_lag_seconds{{{selected}}}", "{{pipeline}} {{topic}}/{{partition}}")))
            .with_row(Row("Throughput"))
            .with_panel(_panel("Records in per second", "short",
                               (f"sum by (pipeline) (rate(kappa_streaming_input_rows_total{{{selected}}}{RATE}))", "{{pipeline}}")))
            .with_panel(_panel("Rows written per second, per sink", "short",
                               (f"sum by (pipeline, sink) (rate(kappa_streaming_rows_written_total{{{selected}}}{RATE}))",
                                "{{pipeline}} {{sink}}")))
            .with_panel(_panel("Batch duration (p50, p95)", "s",
                               (f"histogram_quantile(0.5, sum by (pipeline, le) (rate(kappa_streaming_batch_duration_seconds_bucket{{{selected}}}{RATE})))", "{{pipeline}} p50"),
                               (f"histogram_quantile(0.95, sum by (pipeline, le) (rate(kappa_streaming_batch_duration_seconds_bucket{{{selected}}}{RATE})))", "{{pipeline}} p95")))
            .with_panel(_panel("Batches per minute", "short",
                               (f"sum by (pipeline) (rate(kappa_streaming_batches_total{{{selected}}}{RATE})) * 60", "{{pipeline}}")))
            .with_row(Row("Dead letters and errors"))
            .with_panel(_panel("Dead letters per second", "short",
                               (f"sum by (pipeline, topic) (rate(kappa_streaming_dead_letters_total{{{selected}}}{RATE}))",
                                "{{pipeline}} -> {{topic}}.dlq")))
            .with_panel(_panel("Errors by kind", "short",
                               (f"sum by (pipeline, kind) (increase(kappa_streaming_errors_total{{{selected}}}{RATE}))",
                                "{{pipeline}} {{kind}}")))
            .with_row(Row("Sinks"))
            .with_panel(_panel("Sink write time per batch (p95)", "s",
                               (f"histogram_quantile(0.95, sum by (pipeline, sink, le) (rate(kappa_streaming_sink_write_seconds_bucket{{{selected}}}{RATE})))",
                                "{{pipeline}} {{sink}}"), width=24))
            .with_row(Row("Replay"))
            .with_panel(_panel("Replay progress", "percentunit",
                               ((f"sum by (pipeline, mode) (kappa_replay_events_total{{{selected}}}) / "
                                 f"sum by (pipeline, mode) (kappa_replay_events_planned{{{selected}}})"), "{{pipeline}} {{mode}}"),
                               description="Share of the range a backfill or shadow rebuild has replayed "
                                           "(kappa backfill --metrics-port; make backfill serves it)."))
            .with_panel(_panel("Replay events per second", "short",
                               (f"sum by (pipeline, mode) (rate(kappa_replay_events_total{{{selected}}}{RATE}))",
                                "{{pipeline}} {{mode}}"))))


def connectors() -> Dashboard:
    """Connectors: how far each is behind its source first, then events, dead letters, errors."""
    connector = 'connector=~"$connector"'
    board = (Dashboard("Kappa / Connectors").uid("kappa-connectors").tags(["kappa", "connectors", "lag"])
             .refresh("30s").time("now-1h", "now").timezone("browser"))
    board = _variables(board, "kappa_connector_events_total", "connector")
    return (board
            .with_row(Row("Behind the source"))
            .with_panel(_panel("CDC: WAL retained by the slot", "bytes",
                               (f'kappa_connector_source_lag{{{connector}, unit="wal_bytes"}}', "{{connector}}")))
            .with_panel(_panel("Behind the source (seconds)", "s",
                               (f'kappa_connector_source_lag{{{connector}, unit="seconds"}}', "{{connector}}"),
                               description="CDC: age of the last confirmed transaction's commit. API: age of the "
                                           "cursor (the newest record read)."))
            .with_panel(_panel("Files waiting", "short",
                               (f'kappa_connector_source_lag{{{connector}, unit="files"}}', "{{connector}}"),
                               description="Files listed and not yet published (file connectors)."))
            .with_panel(_panel("Age of the newest published event", "s",
                               (f"time() - (kappa_connector_last_event_timestamp_seconds{{{connector}}} > 0)", "{{connector}}"),
                               width=24))
            .with_row(Row("Throughput"))
            .with_panel(_panel("Events per second", "short",
                               (f"sum by (connector, topic) (rate(kappa_connector_events_total{{{connector}}}{RATE}))",
                                "{{connector}} -> {{topic}}")))
            .with_panel(_panel("Batch time (p95)", "s",
                               (f"histogram_quantile(0.95, sum by (connector, le) (rate(kappa_connector_batch_seconds_bucket{{{connector}}}{RATE})))",
                                "{{connector}}")))
            .with_row(Row("Dead letters and errors"))
            .with_panel(_panel("Dead letters per second", "short",
                               (f"sum by (connector, topic, reason) (rate(kappa_connector_dead_letters_total{{{connector}}}{RATE}))",
                                "{{connector}} {{reason}}")))
            .with_panel(_panel("Source errors and delivery errors", "short",
                               (f"sum by (connector, kind) (increase(kappa_connector_source_errors_total{{{connector}}}{RATE}))",
                                "{{connector}} source {{kind}}"),
                               (f"sum by (connector) (increase(kappa_connector_delivery_errors_total{{{connector}}}{RATE}))",
                                "{{connector}} delivery"))))


DASHBOARDS = (streaming, connectors)


def render() -> dict[str, str]:
    """{file name: JSON} of every dashboard."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    out = {}
    for make in DASHBOARDS:
        board = make().build()
        out[f"{board.uid}.json"] = encoder.encode(board) + "\n"
    return out


def write() -> list[Path]:
    HERE.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        (HERE / name).write_text(text)
        written.append(HERE / name)
    return written


def queries(text: str) -> list[tuple[str, str]]:
    """(panel title, expr) of every panel query in a dashboard's JSON."""
    board = json.loads(text)
    return [(panel.get("title", ""), target["expr"]) for panel in board.get("panels", [])
            for target in panel.get("targets", []) if "expr" in target]
