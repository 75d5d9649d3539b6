"""``python -m batch_replay``: replay a pipeline over a range of its topic (``make backfill`` calls it).

    python -m batch_replay --job orders --from 2026-12-01 --to 2026-12-02 [--dry-run]

Everything is checked before anything is written: the pipeline, the topic, the range (FROM before
TO, still retained by Kafka). Exit status 0 when the replay finished, 1 when it was refused or failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

MODES = ("live",)
SOURCES = ("kafka", "lake")
DEFAULT_CHUNK_EVENTS = 200_000


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m batch_replay", description="Replay a pipeline over a range of its topic with the live "
        "job's code: the same decode, transforms and sinks, in bounded chunks, idempotent per chunk.")
    parser.add_argument("--job", help="pipelines, comma-separated: names in streaming/pipelines (orders, customers) "
                                      "or pipeline files (default: every pipeline in streaming/pipelines)")
    parser.add_argument("--from", dest="start", required=True,
                        help="inclusive start: an ISO time (UTC unless it says), 'earliest', or offsets 0:120,1:98")
    parser.add_argument("--to", dest="end", default="latest",
                        help="exclusive end: an ISO time, 'latest' (default), or offsets per partition")
    parser.add_argument("--mode", choices=MODES, default="live",
                        help="live: idempotent upserts into the serving tables (safe beside the live job)")
    parser.add_argument("--source", choices=SOURCES, default="kafka",
                        help="kafka, or lake: the raw archive the pipeline keeps with archive = true, for ranges "
                             "Kafka no longer retains")
    parser.add_argument("--namespace", help="the serving tables' namespace (default: the pipeline file's)")
    parser.add_argument("--sinks", help="comma-separated (default for live: clickhouse,cassandra,postgres; add "
                                        "lake to append the replayed changes to the lake's history too)")
    parser.add_argument("--chunk-events", type=int, default=DEFAULT_CHUNK_EVENTS,
                        help=f"records per chunk, at most (default {DEFAULT_CHUNK_EVENTS})")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def _pipeline_paths(jobs: str | None) -> list[Path]:
    from streaming import pipelines

    if not jobs:
        return sorted(pipelines.HERE.glob("*.toml"))
    return [_pipeline_path(job.strip()) for job in jobs.split(",") if job.strip()]


def _pipeline_path(job: str) -> Path:
    from batch_replay.ranges import ReplayRefused
    from streaming import pipelines

    path = Path(job)
    if path.suffix == ".toml":
        if not path.exists():
            raise ReplayRefused(f"pipeline file {path} does not exist")
        return path
    candidate = pipelines.path(job)
    if not candidate.exists():
        known = sorted(p.stem for p in candidate.parent.glob("*.toml"))
        raise ReplayRefused(f"unknown job {job!r}: give a pipeline file, or one of {known}")
    return candidate


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    from pydantic import ValidationError

    from batch_replay import ranges
    from batch_replay.replay import LIVE_SINKS, Plan, replay
    from connectors.runtime import configure_logging
    from settings import get_settings
    from streaming.jobs import pipeline as pipelines
    from streaming.sinks.writer import SINKS

    configure_logging("batch-replay", args.log_level)
    settings = get_settings()
    from streaming.session import build_session
    from streaming.sinks import archive

    spark = build_session("batch-replay") if args.source == "lake" else None  # the archive is read with Spark
    plans = []
    try:  # every job's plan before anything is written
        start, end = ranges.parse_bound(args.start), ranges.parse_bound(args.end)
        if args.chunk_events < 1:
            raise ranges.ReplayRefused("--chunk-events must be at least 1")
        for path in _pipeline_paths(args.job):
            overrides = {"namespace": args.namespace} if args.namespace else {}
            pipeline = pipelines.load(path, **overrides)
            # The archive is the one the pipeline keeps, in its own namespace, wherever the replay writes.
            location = archive.path(settings, pipelines.load(path).namespace, pipeline.topic)
            sinks = tuple(s.strip() for s in args.sinks.split(",")) if args.sinks else \
                tuple(s for s in LIVE_SINKS if s in pipeline.sinks)
            unknown = sorted(set(sinks) - set(SINKS))
            if unknown:
                raise ranges.ReplayRefused(f"unknown sinks {unknown} (--sinks); known: {list(SINKS)}")
            if args.source == "kafka":
                span = ranges.resolve(settings, pipeline.topic, start, end)
            else:
                span = ranges.resolve_archive(spark, location, pipeline.topic, start, end)
            plans.append(Plan(pipeline, span, args.chunk_events, pipeline.sink_partitions, sinks, args.source,
                              location))
    except (ranges.ReplayRefused, ValidationError, OSError, ValueError) as exc:
        print(f"batch_replay: refused: {exc}", file=sys.stderr)
        if spark is not None:
            spark.stop()
        return 1
    if args.dry_run:
        for plan in plans:
            print("\n".join(plan.describe(_table(plan.pipeline))))
        print("dry run: nothing written")
        if spark is not None:
            spark.stop()
        return 0
    spark = spark or build_session("batch-replay")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for plan in plans:
            if plan.sink_partitions is None:
                plan = dataclasses.replace(plan, sink_partitions=spark.sparkContext.defaultParallelism)
            print("\n".join(plan.describe(_table(plan.pipeline))))
            try:
                summary = _run_with_progress(plan, settings, spark, replay)
            except Exception as exc:  # the chunks written so far stay; a rerun of the same range skips them
                logging.getLogger(__name__).exception("replay failed")
                print(f"batch_replay: {plan.pipeline.name} failed: {_reason(exc)}. The chunks written so far "
                      "stay; rerun the same command to finish (chunks already written are recognised)",
                      file=sys.stderr)
                return 1
            print(f"done in {summary.seconds:.1f} s: {summary.events} events in {summary.chunks} chunks, "
                  f"{summary.rejected} to the DLQ ({plan.pipeline.topic}.dlq); rows written: "
                  + ", ".join(f"{sink} {count}" for sink, count in summary.sinks.items()))
    finally:
        spark.stop()
    return 0


def _reason(exc: Exception) -> str:
    """The failure in one line: a JVM error's own class and message, not py4j's wrapper."""
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _table(pipeline) -> str:
    return pipeline.table or pipeline.topic.rsplit(".", 1)[-1]


def _run_with_progress(plan, settings, spark, replay):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} events/s"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"replay {plan.pipeline.name}", total=plan.range.events, rate="-")

        def advance(done: int, result: dict) -> None:
            elapsed = bar.tasks[task].elapsed or 1e-9
            bar.update(task, completed=done, rate=f"{done / elapsed:,.0f}")

        return replay(plan, settings, spark, advance)


if __name__ == "__main__":
    sys.exit(main())
