"""The streaming commands of ``kappa``: ``run`` (a pipeline's live job), ``new`` (a starting pipeline
file, :mod:`streaming.jobs.scaffold`) and ``migrate`` (a pipeline's table migrations).

``kappa run`` exits 0 after SIGTERM/SIGINT (the batch in flight finished) or when
``--available-now`` reached the end, and 1 when the job gave up (the last log line says why), so a
supervisor (Kubernetes, Airflow) tells a clean stop from a failure.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from kappa.cli import add_log_level
from kappa.errors import Refused


def add_commands(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run a pipeline until stopped",
                              description="Run a pipeline's live job until SIGTERM/SIGINT (or, with "
                                          "--available-now, until it has read what its topic holds).")
    run.add_argument("pipeline", help="a pipeline's name (orders; found in streaming.pipelines_dir, then the "
                                 "platform's own) or its TOML file")
    run.add_argument("--available-now", action="store_true",
                     help="process what is in the topic now, then stop (tests, catch-up)")
    run.add_argument("--serving-version", type=int, metavar="N",
                     help="write serving version N (a shadow one: the Kappa rebuild's second job, kappa "
                          "rebuild); default: the version readers see")
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="serve /metrics, /healthz and /readyz on PORT (default: the file's metrics_port; 0: a "
                          "free port, logged)")
    add_log_level(run)
    run.set_defaults(run=_run)

    new = commands.add_parser(
        "new", help="write a starting pipeline file from the registry, the catalog or a sample file",
        description="A starting pipeline file for: a topic the registry has; a PostgreSQL table to capture "
                    "(schema.table with --topic-prefix); or files like --sample (and their Avro contract).")
    new.add_argument("source", help="a topic; schema.table with --topic-prefix; with --sample, the topic to publish to")
    new.add_argument("--topic-prefix", help="CDC: the connector's topic_prefix (reads the table from the catalog)")
    new.add_argument("--sample", type=Path, help="a CSV, JSON Lines or Parquet file like those to publish")
    new.add_argument("--key", help="the key columns, comma-separated (default: the topic's key schema / primary key)")
    new.add_argument("--time-field", help="--sample: the column holding each row's time (default: ingest time)")
    new.add_argument("--namespace", default="serving", help="where the serving tables go (default: serving)")
    new.add_argument("--output", type=Path, help="the pipeline file to write (default: <table>.toml in the "
                                                  "pipelines folder, streaming.pipelines_dir)")
    new.add_argument("--contract", type=Path,
                     help="--sample: the contract to write (default: schemas/avro/<topic>.avsc)")
    new.add_argument("--force", action="store_true", help="overwrite files that exist")
    new.set_defaults(run=_new)

    migrate = commands.add_parser("migrate", help="apply a pipeline's missing table migrations",
                                  description="Apply the migrations of a pipeline's 'migrations' folder that its "
                                              "stores have not applied yet.")
    migrate.add_argument("pipeline", help="a pipeline's name or its TOML file")
    migrate.add_argument("--namespace", help="default: the pipeline's")
    migrate.set_defaults(run=_migrate)


def _run(args: argparse.Namespace) -> int:
    from streaming import pipelines
    from streaming.jobs.main import run_pipeline

    return run_pipeline(pipelines.find(args.pipeline), available_now=args.available_now, log_level=args.log_level,
                        serving_version=args.serving_version, metrics_port=args.metrics_port)


def _new(args: argparse.Namespace) -> int:
    from kappa.settings import get_settings
    from schemas.contracts import CONTRACTS_DIR
    from streaming import pipelines
    from streaming.jobs import scaffold

    key = [k.strip() for k in args.key.split(",") if k.strip()] if args.key else None
    contract = args.contract or CONTRACTS_DIR / f"{args.source}.avsc"
    output = args.output
    written = [p for p in (output, contract if args.sample else None) if p is not None and p.exists()]
    if written and not args.force:
        raise Refused(f"{', '.join(map(str, written))} exists: pass --force to overwrite")
    try:
        if args.sample:
            draft = scaffold.from_sample(args.sample, args.source, key or [], contract, args.time_field)
        elif args.topic_prefix:
            draft = scaffold.from_catalog(get_settings(), args.source, args.topic_prefix, key)
        else:
            draft = scaffold.from_registry(get_settings(), args.source, key)
    except OSError as exc:
        raise Refused(str(exc)) from exc
    draft.namespace = args.namespace
    if output is None:
        pipelines.home().mkdir(parents=True, exist_ok=True)
        output = pipelines.home() / f"{draft.name}.toml"
    if output.exists() and not args.force:
        raise Refused(f"{output} exists: pass --force to overwrite")
    output.write_text(scaffold.render(draft))
    print(f"wrote {output}" + (f" and {contract}" if args.sample else ""))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from kappa.settings import get_settings
    from streaming import pipelines, stores
    from streaming.jobs import pipeline
    from streaming.stores.base import migration_files

    p = pipeline.load(pipelines.find(args.pipeline), **({"namespace": args.namespace} if args.namespace else {}))
    if p.migrations is None:
        raise Refused(f"pipeline {p.name} has no migrations (its file sets no 'migrations' folder)")
    for name in (s for s in stores.names() if s in p.sinks and migration_files(p.migrations, s)):
        versions = stores.get(name).migrate(get_settings(), p.namespace, p.name, p.migrations)
        print(f"{name}: {'applied ' + ', '.join(versions) if versions else 'up to date'}")
    return 0
