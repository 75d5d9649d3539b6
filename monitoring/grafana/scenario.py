"""A short real run on the local stack for the dashboard pictures: the lag rises and drains.

    python -m monitoring preview --scenario        (make dashboards-preview SCENARIO=1)

The demo's orders job runs (with its /metrics registered with the local Prometheus) beside the lag
exporter while order events arrive; then the job stops and events keep arriving (its lag rises,
in records and seconds, though the job exports nothing); then it starts again and catches up (the
lag drains). Each phase lasts ``phase_s``. Nothing is mocked: the same job, exporter and Prometheus
a deployment has.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

from prometheus_client import start_http_server

from monitoring import targets
from settings import get_settings
from stack import ports

NAMESPACE = "preview"


def _job(spark, name: str, checkpoint_dir: str):
    from demo.__main__ import TOPIC
    from streaming import pipelines
    from streaming.jobs import pipeline
    from streaming.jobs.runner import JobRunner

    orders = pipeline.load(pipelines.path("orders"), name=name, topic=TOPIC, namespace=NAMESPACE,
                           checkpoint_dir=checkpoint_dir, trigger_seconds=2)
    return orders, JobRunner(orders.definition(), orders, get_settings(), spark)


def _publish_for(seconds: float, per_second: int) -> None:
    from demo.__main__ import publish

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        publish(per_second)
        time.sleep(max(0.0, 1 - (time.monotonic() - started)))


def run(phase_s: float = 60, per_second: int = 50) -> float:
    """Run the three phases; the seconds they took (what the pictures should show)."""
    from demo.__main__ import seed_customers
    from streaming.session import build_session

    from demo.__main__ import publish

    started = time.monotonic()
    seed_customers(NAMESPACE)
    publish(per_second)  # the contract is in the registry before the job starts
    name = f"preview-orders-{uuid.uuid4().hex[:6]}"
    checkpoints = f"/tmp/kappa-preview/{name}"
    spark = build_session("preview")
    spark.sparkContext.setLogLevel("ERROR")
    port = ports.LAG_EXPORTER + 1  # the job's /metrics, beside the exporter's
    start_http_server(port, addr="127.0.0.1")
    targets.announce(f"job-{name}", "127.0.0.1", port, {"job": name})
    orders, runner = _job(spark, name, checkpoints)
    pipeline_file = _pipeline_file(orders)
    exporter = subprocess.Popen([sys.executable, "-m", "monitoring", "lag-exporter", "--pipeline", str(pipeline_file)])
    try:
        for phase, job_runs in (("running", True), ("stopped", False), ("restarted", True)):
            print(f"phase {phase}: {phase_s:.0f} s, {per_second} events/s, the job {'runs' if job_runs else 'is stopped'}",
                  flush=True)
            worker = None
            if job_runs:
                if phase == "restarted":
                    orders, runner = _job(spark, name, checkpoints)
                worker = threading.Thread(target=runner.run, daemon=True)
                worker.start()
            _publish_for(phase_s if phase != "restarted" else phase_s / 3, per_second)
            if phase == "restarted":
                time.sleep(phase_s * 2 / 3)  # no new events: the lag drains
            if worker is not None and phase == "running":
                runner.stop()
                worker.join(120)
        runner.stop()
        time.sleep(5)
    finally:
        exporter.terminate()
        exporter.wait(30)
        spark.stop()
    return time.monotonic() - started


def _pipeline_file(orders):
    """The job's settings as a pipeline file, for the lag exporter (which reads pipeline files)."""
    from pathlib import Path

    from streaming import pipelines

    source = pipelines.path("orders").read_text()
    path = Path(f"/tmp/kappa-preview/{orders.name}.toml")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [line for line in source.splitlines()
             if not line.split("=")[0].strip() in ("name", "topic", "namespace", "checkpoint_dir")]
    head = [f'name = "{orders.name}"', f'topic = "{orders.topic}"', f'namespace = "{NAMESPACE}"',
            f'checkpoint_dir = "{orders.checkpoint_dir}"']
    body = "\n".join(lines)
    for relative in ("sql", "migrations"):  # relative to the file they were in
        body = body.replace(f'{relative} = "', f'{relative} = "{pipelines.HERE}/')
    path.write_text("\n".join(head) + "\n" + body + "\n")
    return path
