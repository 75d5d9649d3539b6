"""The life of a job process: config, logs, metrics, the SparkSession, SIGTERM -> graceful stop.

Exit status: 0 after SIGTERM/SIGINT (the batch in flight finished) or when ``--available-now``
reached the end; 1 when the job gave up after ``max_restarts`` (the last log line says why), so
a supervisor (Kubernetes, Airflow) tells a clean stop from a failure.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from prometheus_client import start_http_server

from connectors.runtime import configure_logging
from settings import get_settings
from streaming.jobs.runner import JobDefinition, JobFailed, JobRunner, load_config
from streaming.session import build_session


def main(job: JobDefinition, description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=Path, required=True, help="the job's TOML config")
    parser.add_argument("--available-now", action="store_true",
                        help="process what is in the topic now, then stop (tests, catch-up)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    config = load_config(args.config)
    configure_logging(config.name, args.log_level)
    log = logging.getLogger(__name__)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per gateway connection otherwise
    if config.metrics_port:
        start_http_server(config.metrics_port, addr="127.0.0.1")
    spark = build_session(config.name)
    spark.sparkContext.setLogLevel("ERROR")  # the job logs each failure itself, in one line
    runner = JobRunner(job, config, get_settings(), spark)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    status = 0
    try:
        runner.run(available_now=args.available_now)
    except JobFailed:
        status = 1  # already logged, as the last line
    finally:
        spark.stop()
    if status == 0:
        log.info("stopped")
    logging.shutdown()
    sys.exit(status)
