"""The life of a pipeline process: its file, logs, metrics, the SparkSession, SIGTERM -> graceful stop.

Behind ``kappa run <pipeline>.toml`` (:mod:`streaming.cli`). Exit status: 0 after SIGTERM/SIGINT
(the batch in flight finished) or when ``available_now`` reached the end; 1 when the job gave up
after ``max_restarts`` or could not start (the last log line says why); 2 when the pipeline file is
refused (:class:`kappa.errors.Refused`), so a supervisor (Kubernetes, Airflow) tells a clean stop
from a failure from a mistake.
"""
from __future__ import annotations

import logging
import signal
from pathlib import Path

import psycopg2
from pydantic import ValidationError

from monitoring import endpoint, targets
from kappa import logs
from kappa.errors import Refused, Unavailable
from kappa.settings import get_settings
from streaming import locks
from streaming.jobs import pipeline as pipelines
from streaming.jobs.runner import JobFailed, JobRunner
from streaming.session import build_session


def run_pipeline(path: Path, available_now: bool = False, log_level: str = "INFO",
                 serving_version: int | None = None, metrics_port: int | None = None) -> int:
    """Run the pipeline in ``path`` until stopped; the process's exit status.

    The job writes the serving version readers see, or ``serving_version`` (a Kappa rebuild's shadow
    job). One process per query: a second one on the same checkpoint is refused. ``metrics_port``
    replaces the file's (a pod's fixed port, whatever the file says)."""
    settings = get_settings()
    try:
        overrides = {} if metrics_port is None else {"metrics_port": metrics_port}
        pipeline = pipelines.load(path, **overrides).as_version(settings, serving_version)
        job = pipeline.definition()
        alone = locks.try_hold(settings, locks.JOB, pipeline.checkpoint, f"kappa job {pipeline.name}")
        if alone is None:
            raise ValueError(f"job {pipeline.name} already runs ({locks.holder(settings, locks.JOB, pipeline.checkpoint)}"
                             f"): two processes on one checkpoint ({pipeline.checkpoint}) corrupt it; stop that one "
                             "first")
    except psycopg2.OperationalError as exc:
        raise Unavailable(f"PostgreSQL (the serving versions of pipeline file {path}): {str(exc).strip()}") from exc
    except (OSError, ValueError, ValidationError, ImportError, psycopg2.Error) as exc:
        raise Refused(f"pipeline file {path}: {str(exc).strip()}") from exc
    logs.configure("pipeline", pipeline.name, log_level)
    log = logging.getLogger(__name__)
    health = endpoint.Health()
    host = settings.metrics.host  # metrics and probes always: metrics_port 0 is a port the system picks
    try:
        port = endpoint.serve(pipeline.metrics_port, host, health).server_port
    except OSError as exc:
        alone.close()
        raise Refused(f"job {pipeline.name} cannot serve metrics on {host}:{pipeline.metrics_port} ({exc.strerror}): "
                      f"another process has the port; set metrics_port in {path} or --metrics-port (0: any free "
                      "port)") from None
    targets.announce(f"job-{pipeline.name}", endpoint.announced_host(host), port, {"job": "pipeline"})
    log.info("metrics on http://%s:%d/metrics", endpoint.announced_host(host), port)
    spark = build_session(pipeline.name)
    spark.sparkContext.setLogLevel("ERROR")  # the job logs each failure itself, in one line
    runner = JobRunner(job, pipeline, settings, spark, health)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    status = 0
    try:
        runner.run(available_now=available_now)
    except JobFailed:
        status = 1  # already logged, as the last line
    finally:
        spark.stop()
        alone.close()  # the next process of this query may start
    if status == 0:
        log.info("stopped")
    logging.shutdown()
    return status
