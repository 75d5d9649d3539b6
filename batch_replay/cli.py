"""The replay commands of ``kappa``: ``backfill``, ``rebuild`` and ``versions`` (``make backfill`` and
``make rebuild`` call them; ``python -m batch_replay`` is an alias of ``kappa backfill``).

    kappa backfill --pipeline orders --from 2026-12-01 --to 2026-12-02 [--dry-run]
    kappa backfill --pipeline orders --from earliest --mode shadow [--no-cut-over]
    kappa rebuild --pipeline orders [--launch local|none] [--max-lag 0]
    kappa rebuild --pipeline orders --step start|check|wait|cut-over|stop-old
    kappa versions --pipeline orders [--cut-over N | --drop-old]

Everything is checked before anything is written: the pipeline, the topic, the range (FROM before
TO, still retained by Kafka), and for a shadow rebuild that no other rebuild of the pipeline runs.
Exit status as every ``kappa`` command's (0 done, 2 refused, 1 failed); ``kappa rebuild --step
check``: 3 while the shadow job has not caught up.
"""
from __future__ import annotations

import argparse
import dataclasses
import contextlib
import logging
import sys
import time
from pathlib import Path

from kappa.cli import add_log_level
from kappa.errors import Refused, Unavailable
from kappa.settings import ports

MODES = ("live", "shadow")
STEPS = ("all", "start", "check", "wait", "cut-over", "stop-old")  # kappa rebuild --step: batch_replay.rebuild's steps
NOT_YET = 3  # kappa rebuild --step check: the shadow job has not caught up yet
SOURCES = ("kafka", "lake")
DEFAULT_CHUNK_EVENTS = 200_000


def add_commands(commands: argparse._SubParsersAction) -> None:
    backfill = commands.add_parser("backfill", help="replay a range of a pipeline's topic with the live code",
                                   description="Replay a pipeline over a range of its topic with the live job's "
                                   "code: the same decode, transforms and sinks, in bounded chunks, idempotent per "
                                   "chunk.")
    add_backfill_arguments(backfill)
    backfill.set_defaults(run=_backfill)

    rebuild = commands.add_parser("rebuild", help="the Kappa rebuild: a shadow version, then the cut-over",
                                  description="The Kappa rebuild of each pipeline: a second live job writes a new "
                                  "version from the earliest retained offset; once it has caught up, readers are "
                                  "cut over to it and the old job stops by itself.")
    _add_pipelines(rebuild)
    _add_serving_version(rebuild, "the version to start (default: the newest one not cut over yet, else a new one)")
    rebuild.add_argument("--launch", choices=("local", "none"), default="local",
                         help="start the shadow job here, detached (local, default), or wait for one started "
                              "elsewhere with the same arguments (none: e.g. a SparkApplication)")
    rebuild.add_argument("--step", default="all", choices=STEPS,
                         help="one step of it, for a scheduler that runs each as its own task: start (the shadow "
                              "version and its job), check (exit 0 once caught up, 3 while not yet), wait (until "
                              "caught up), cut-over (refused unless caught up), stop-old (the previous version's job "
                              "stopped); all (default): every step in this process")
    rebuild.add_argument("--max-lag", type=int, default=0, metavar="EVENTS",
                         help="cut over once the shadow job is at most this many events behind (default 0)")
    rebuild.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                         help="give up waiting after this long (default 3600); the shadow job goes on")
    add_log_level(rebuild, "WARNING")
    rebuild.set_defaults(run=_rebuild)

    listing = commands.add_parser("versions", help="list, switch or drop a pipeline's serving versions",
                                  description="Without an action: list the serving versions of each pipeline.")
    _add_pipelines(listing)
    listing.add_argument("--namespace", help="the serving tables' namespace (default: the pipeline file's)")
    action = listing.add_mutually_exclusive_group()
    action.add_argument("--cut-over", type=int, metavar="N",
                        help="switch the readers of each pipeline to version N (a built shadow, or a previous one)")
    action.add_argument("--drop-old", action="store_true",
                        help="drop the tables of every previous version of each pipeline")
    add_log_level(listing, "WARNING")
    listing.set_defaults(run=_versions)


def add_backfill_arguments(parser: argparse.ArgumentParser) -> None:
    """``kappa backfill``'s arguments (the DAGs build theirs against them: tests/unit/orchestration/test_orchestration.py)."""
    _add_pipelines(parser)
    parser.add_argument("--from", dest="start",
                        help="inclusive start: an ISO time (UTC unless it says), 'earliest', or offsets 0:120,1:98 "
                             "(required)")
    parser.add_argument("--to", dest="end", default="latest",
                        help="exclusive end: an ISO time, 'latest' (default), or offsets per partition")
    parser.add_argument("--mode", choices=MODES, default="live",
                        help="live: idempotent upserts into the serving tables readers see (safe beside the live "
                             "job); shadow: a new version of every serving table, then the cut-over to it")
    parser.add_argument("--no-cut-over", action="store_true",
                        help="shadow: build the version and stop; readers keep the active one (kappa versions "
                             "--cut-over N later)")
    _add_serving_version(parser, "shadow: the version to write (default: the newest one not cut over yet, else a new "
                                 "one)")
    parser.add_argument("--source", choices=SOURCES, default="kafka",
                        help="kafka, or lake: the raw archive the pipeline keeps with archive = true, for ranges "
                             "Kafka no longer retains")
    parser.add_argument("--namespace", help="the serving tables' namespace (default: the pipeline file's)")
    parser.add_argument("--sinks", help="comma-separated (default for live: clickhouse,cassandra,postgres; add "
                                        "lake to append the replayed changes to the lake's history too; shadow: "
                                        "every sink of the pipeline)")
    parser.add_argument("--chunk-events", type=int, default=DEFAULT_CHUNK_EVENTS,
                        help=f"records per chunk, at most (default {DEFAULT_CHUNK_EVENTS})")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    parser.add_argument("--metrics-port", type=int, default=0, metavar="PORT",
                        help="serve the replay's progress (kappa_replay_*) on /metrics at this port while it runs "
                             f"(make backfill: {ports.REPLAY_METRICS}); 0: off (default)")
    parser.add_argument("--metrics-linger", type=float, default=0.0, metavar="SECONDS",
                        help="with --metrics-port: keep serving this long after the replay, so a scrape sees its "
                             "final counts (the local Prometheus scrapes every 5 s)")
    add_log_level(parser, "WARNING")


def _add_pipelines(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", "--job", dest="pipelines", metavar="PIPELINES",
                        help="pipelines, comma-separated: names (orders, customers; found in streaming.pipelines_dir, "
                             "then the platform's own) or pipeline files (default: every pipeline)")


def _add_serving_version(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--serving-version", "--version", dest="version", type=int, metavar="N", help=help)


def _pipeline_paths(names: str | None) -> list[Path]:
    from streaming import pipelines

    if not names:
        return pipelines.every()
    return [pipelines.find(name.strip()) for name in names.split(",") if name.strip()]


def _backfill(args: argparse.Namespace) -> int:
    """``kappa backfill``: plan every pipeline's replay (refusing before anything is written), then run them."""
    from kappa import logs

    logs.configure("replay", "batch-replay", args.log_level)
    import psycopg2
    from pydantic import ValidationError

    from batch_replay import ranges
    from batch_replay.replay import Plan, live_sinks, replay
    from kappa.settings import get_settings
    from streaming.jobs import pipeline as pipelines
    from streaming.session import build_session
    from streaming.stores import archive
    from streaming import stores
    from streaming import versions

    settings = get_settings()
    _serve_metrics(args.metrics_port, settings.metrics.host)
    spark = build_session("batch-replay") if args.source == "lake" else None  # the archive is read with Spark
    plans = []
    locks = contextlib.ExitStack()  # a shadow rebuild's lock, held until it finished (and cut over)
    try:  # every job's plan before anything is written
        if args.start is None:
            raise ranges.ReplayRefused("--from is required (FROM=... for make backfill): where the replay starts")
        start, end = ranges.parse_bound(args.start), ranges.parse_bound(args.end)
        if args.chunk_events < 1:
            raise ranges.ReplayRefused("--chunk-events must be at least 1")
        if args.mode == "live" and (args.no_cut_over or args.version is not None):
            raise ranges.ReplayRefused("--no-cut-over and --version are for --mode shadow")
        for path in _pipeline_paths(args.pipelines):
            overrides = {"namespace": args.namespace} if args.namespace else {}
            pipeline = pipelines.load(path, **overrides)
            # The archive is the one the pipeline keeps, in its own namespace, wherever the replay writes.
            location = archive.path(settings, pipelines.load(path).namespace, pipeline.topic)
            default = live_sinks() if args.mode == "live" else stores.names()
            sinks = tuple(s.strip() for s in args.sinks.split(",")) if args.sinks else \
                tuple(s for s in default if s in pipeline.sinks)
            unknown = sorted(set(sinks) - set(stores.names()))
            if unknown:
                raise ranges.ReplayRefused(f"unknown sinks {unknown} (--sinks); known: {list(stores.names())}")
            version = serving = None
            if args.mode == "live":
                pipeline = pipeline.as_version(settings)  # what readers see, wherever a cut-over put it
            else:
                locks.enter_context(versions.hold(settings, pipeline.namespace, pipeline.name, "shadow rebuild"))
                version = versions.planned(settings, pipeline.namespace, pipeline.name, args.version) \
                    if args.dry_run else versions.shadow(settings, pipeline.namespace, pipeline.name, args.version)
                serving = versions.ServingVersion(pipeline=pipeline.name, namespace=pipeline.namespace,
                                                  number=version.number)
            if args.source == "kafka":
                span = ranges.resolve(settings, pipeline.topic, start, end)
            else:
                span = ranges.resolve_archive(spark, location, pipeline.topic, start, end)
            plans.append(Plan(pipeline, span, args.chunk_events, pipeline.sink_partitions, sinks, args.source,
                              location, args.mode, version, serving))
    except (ValidationError, OSError, ValueError, psycopg2.Error) as exc:
        locks.close()
        if spark is not None:
            spark.stop()
        raise _translated(exc) from exc
    with locks:
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
                    print(f"kappa backfill: {plan.pipeline.name} failed: {_reason(exc)}. The chunks written so far "
                          "stay; rerun the same command to finish (chunks already written are recognised)",
                          file=sys.stderr)
                    return 1
                print(f"done in {summary.seconds:.1f} s: {summary.events} events in {summary.chunks} chunks, "
                      f"{summary.rejected} to the DLQ ({plan.pipeline.topic}.dlq); rows written: "
                      + ", ".join(f"{sink} {count}" for sink, count in summary.sinks.items()))
                if plan.version is not None:
                    _finish_shadow(plan, settings, args.no_cut_over)
        finally:
            spark.stop()
            if args.metrics_port and args.metrics_linger > 0:
                time.sleep(args.metrics_linger)
    return 0


def _serve_metrics(port: int, host: str) -> None:
    """/metrics (and the probes' paths) on ``host:port`` for this process's life, announced to the
    local Prometheus."""
    if not port:
        return
    from monitoring import endpoint, targets

    try:
        endpoint.serve(port, host, endpoint.Health.passive())
    except OSError as exc:
        raise Refused(f"batch_replay: cannot serve metrics on {host}:{port} ({exc.strerror}): another "
                         "replay may be running; pass another --metrics-port (make backfill METRICS_PORT=...)") from None
    targets.announce(f"batch-replay-{port}", endpoint.announced_host(host), port, {"job": "batch-replay"})


def _finish_shadow(plan, settings, no_cut_over: bool) -> None:
    """Record where the shadow's replay ended (its live job starts there), then cut over unless asked not to."""
    from streaming import versions

    version, pipeline = plan.version, plan.pipeline
    versions.record_end(settings, version, {plan.range.topic: {str(p.partition): p.end for p in plan.range.partitions}})
    if no_cut_over:
        print(f"version {version.number} of {pipeline.name} is built in {version.home}; readers still see the active "
              f"version. Switch them with: kappa versions --pipeline {pipeline.name} --cut-over {version.number}")
        return
    switched = versions.cut_over(settings, pipeline.namespace, pipeline.name, version.number)
    print(f"cut over: readers of {pipeline.namespace} see version {version.number} of {pipeline.name}:")
    print("\n".join(f"  {line}" for line in switched))
    print(f"the live job of version {version.number} starts where this replay ended: kappa run "
          f"{pipeline.name}; a job still writing the previous version stops by itself")


def _versions(args: argparse.Namespace) -> int:
    """``kappa versions [--cut-over N | --drop-old]``: one pipeline's serving versions, under its lock."""
    import psycopg2
    from pydantic import ValidationError

    from kappa import logs
    from kappa.settings import get_settings
    from streaming.jobs import pipeline as pipelines
    from streaming import versions

    logs.configure("replay", "batch-replay", args.log_level)
    settings = get_settings()
    try:
        for path in _pipeline_paths(args.pipelines):
            overrides = {"namespace": args.namespace} if args.namespace else {}
            pipeline = pipelines.load(path, **overrides)
            ns, name = pipeline.namespace, pipeline.name
            if args.cut_over is None and not args.drop_old:
                rows = versions.listing(settings, ns, name)
                print(f"{name} in {ns}: " + ("no versions: the namespace is version 1" if not rows else ""))
                for v in rows:
                    print(f"  v{v.number} {v.state:<8} " + ", ".join(f"{s} {n}" for s, n in v.locations.items())
                          + (f", active since {v.activated_at:%Y-%m-%d %H:%M:%S %Z}" if v.state == "active" else ""))
                continue
            with versions.hold(settings, ns, name, "cut-over" if args.cut_over is not None else "drop"):
                if args.cut_over is not None:
                    lines = versions.cut_over(settings, ns, name, args.cut_over)
                    print(f"cut over: readers of {ns} see version {args.cut_over} of {name}:")
                else:
                    lines = versions.drop_previous(settings, ns, name) or ["nothing: no previous version"]
                    print(f"dropped, of {name} in {ns}:")
                print("\n".join(f"  {line}" for line in lines))
    except (ValidationError, OSError, ValueError, psycopg2.Error) as exc:
        raise _translated(exc) from exc
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    """``kappa rebuild``: each pipeline in turn, from a new shadow version to its cut-over (or one --step)."""
    import psycopg2
    from pydantic import ValidationError

    from batch_replay import rebuild
    from batch_replay.ranges import ReplayRefused
    from kappa import logs
    from kappa.settings import get_settings

    logs.configure("replay", "batch-replay", args.log_level)
    settings = get_settings()
    try:
        if args.version is not None and args.step not in ("all", "start"):
            raise ReplayRefused(f"kappa rebuild --step {args.step} takes no --serving-version: it finds the shadow "
                                "version that the start step recorded")
        for path in _pipeline_paths(args.pipelines):
            if args.step == "all":
                rebuild.rebuild(settings, path, launch=args.launch, max_lag=args.max_lag, timeout_s=args.timeout,
                                number=args.version)
            elif args.step == "start":
                rebuild.start(settings, path, launch=args.launch, number=args.version)
            elif args.step == "check":
                if not rebuild.caught_up(settings, path, max_lag=args.max_lag):
                    return NOT_YET
            elif args.step == "wait":
                rebuild.wait(settings, path, max_lag=args.max_lag, timeout_s=args.timeout)
            elif args.step == "cut-over":
                rebuild.cut_over(settings, path, max_lag=args.max_lag)
            else:
                rebuild.stop_old(settings, path)
    except (ValidationError, OSError, ValueError, psycopg2.Error) as exc:
        raise _translated(exc) from exc
    return 0


def _translated(exc: Exception) -> Exception:
    """A library's error met while planning, as the platform's: the database unreachable is
    :class:`Unavailable`; a bad file, range or value is :class:`Refused`. Ours pass as they are."""
    import psycopg2

    from kappa.errors import KappaError

    if isinstance(exc, KappaError):
        return exc
    if isinstance(exc, psycopg2.OperationalError):
        return Unavailable(f"PostgreSQL: {str(exc).strip()}")
    return Refused(str(exc).strip())


def _reason(exc: Exception) -> str:
    """The failure in one line: a JVM error's own class and message, not py4j's wrapper."""
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _table(pipeline) -> str:
    return pipeline.table or pipeline.topic.rsplit(".", 1)[-1]


def _run_with_progress(plan, settings, spark, replay):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} events/s"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"replay {plan.pipeline.name}", total=plan.range.events, rate="-")

        def advance(done: int, result) -> None:
            elapsed = bar.tasks[task].elapsed or 1e-9
            bar.update(task, completed=done, rate=f"{done / elapsed:,.0f}")

        return replay(plan, settings, spark, advance)
