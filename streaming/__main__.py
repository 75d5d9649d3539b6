"""``python -m streaming run <pipeline>.toml``: run one pipeline as a long-running process.

Exit status: 0 after SIGTERM/SIGINT (the batch in flight finished) or when ``--available-now``
reached the end; 1 when the job gave up (the last log line says why), so a supervisor
(Kubernetes, Airflow) tells a clean stop from a failure.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a pipeline file until stopped")
    run.add_argument("pipeline", type=Path, help="the pipeline's TOML file (e.g. streaming/pipelines/orders.toml)")
    run.add_argument("--available-now", action="store_true",
                     help="process what is in the topic now, then stop (tests, catch-up)")
    run.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    from streaming.jobs.main import run_pipeline

    return run_pipeline(args.pipeline, available_now=args.available_now, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
