"""A short real run on the local stack for the dashboard pictures: the lag rises and drains.

    python -m demo.scenario [--out docs/dashboards]        (make dashboards-preview SCENARIO=1)

The demo's orders job runs (with its /metrics registered with the local Prometheus) beside the lag
exporter while order events arrive; then the job stops and events keep arriving (its lag rises,
in records and seconds, though the job exports nothing); then it starts again and catches up (the
lag drains). Each phase lasts ``phase_s``. Beside it the file connector publishes the payments
files that land now and then (a row of some of them is invalid: a dead letter), and the CDC
connector streams a stock table updated every second; last, a backfill replays the run's events. Nothing is mocked: the same job, exporter and Prometheus
a deployment has. Then the dashboards are drawn from that stretch (:mod:`monitoring.grafana.preview`).
"""
from __future__ import annotations

import argparse

import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from prometheus_client import start_http_server

from monitoring import targets
from kappa.settings import get_settings
from kappa.settings import ports

NAMESPACE = "preview"


def _job(spark, name: str, checkpoint_dir: str):
    from demo.__main__ import TOPIC
    from streaming import pipelines
    from streaming.jobs import pipeline
    from streaming.jobs.runner import JobRunner

    orders = pipeline.load(pipelines.path("orders"), name=name, topic=TOPIC, namespace=NAMESPACE,
                           checkpoint_dir=checkpoint_dir, trigger_seconds=2)
    return orders, JobRunner(orders.definition(), orders, get_settings(), spark)


class _Sources:
    """What arrives while the pictures are taken: order events for the job (new ones each second),
    now and then a payments file for a file connector, and stock updates for a CDC connector (the
    connectors dashboard's data)."""

    def __init__(self, inbox: Path, stock_table: str) -> None:
        self.inbox, self.sent, self.files = inbox, 0, 0
        self.stock_table = stock_table

    def publish_for(self, seconds: float, per_second: int) -> None:
        from demo.__main__ import publish

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            publish(per_second, first=self.sent, echo=False, t0=int(time.time() * 1000),
                    step_ms=1000 // per_second)  # newer than any earlier run's: rows to write
            self.sent += per_second
            self.update_stock(per_second // 5)
            if self.sent % (per_second * 10) == 0:
                self.drop_file(per_second)
            time.sleep(max(0.0, 1 - (time.monotonic() - started)))

    def update_stock(self, rows: int) -> None:
        import psycopg2

        conn = psycopg2.connect(get_settings().postgres.dsn())
        with conn, conn.cursor() as cur:
            cur.execute(f"UPDATE public.{self.stock_table} SET qty = qty + 1, updated_at = now() "
                        "WHERE id IN (SELECT (random() * 99)::int + 1 FROM generate_series(1, %s))", (rows,))
        conn.close()

    def drop_file(self, rows: int) -> None:
        self.files += 1
        lines = ["payment_id,order_id,amount,currency,method,paid_at"]
        lines += [f"p-{self.files}-{i},{i},{1 + i % 90}.50,EUR,card,{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                  for i in range(rows)]
        if self.files % 3 == 0:  # an amount that is no number: the connector's dead letter
            lines.append(f"p-{self.files}-bad,0,twelve,EUR,card,{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        (self.inbox / f"payments-{self.files}.csv").write_text("\n".join(lines) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _files_connector(folder: Path) -> subprocess.Popen:
    """The platform's file connector on ``folder/inbox``, its /metrics registered with Prometheus."""
    port = _free_port()
    config = folder / "preview-files.toml"
    config.write_text(f'name = "preview-files"\ntopic = "preview.files.payments"\ncontract = "shop.files.payments"\n'
                      f'directory = "{folder / "inbox"}"\nkey = ["payment_id"]\ntime_field = "paid_at"\n'
                      f"poll_interval_s = 2.0\nmetrics_port = {port}\n")
    return subprocess.Popen([sys.executable, "-m", "kappa", "connector", "files", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stock_table() -> str:
    """A small table for the CDC connector, 100 rows."""
    import psycopg2

    table = f"preview_stock_{uuid.uuid4().hex[:6]}"
    conn = psycopg2.connect(get_settings().postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE public.{table} (id int PRIMARY KEY, qty int NOT NULL, updated_at timestamptz NOT NULL)")
        cur.execute(f"INSERT INTO public.{table} SELECT g, 0, now() FROM generate_series(1, 100) g")
    conn.close()
    return table


def _cdc_connector(folder: Path, table: str) -> subprocess.Popen:
    """The platform's CDC connector on ``table``, its /metrics registered with Prometheus."""
    config = folder / "preview-cdc.toml"
    config.write_text(f'name = "preview-cdc"\ntables = ["public.{table}"]\ntopic_prefix = "preview.cdc"\n'
                      f"heartbeat_interval_s = 2.0\nmetrics_port = {_free_port()}\n")
    return subprocess.Popen([sys.executable, "-m", "kappa", "connector", "cdc", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _drop_stock(table: str) -> None:
    import psycopg2

    conn = psycopg2.connect(get_settings().postgres.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = 'kappa_preview_cdc' AND NOT active")
        cur.execute("DROP PUBLICATION IF EXISTS kappa_preview_cdc")
        cur.execute("DROP PUBLICATION IF EXISTS kappa_preview_cdc_inserts")
        cur.execute(f"DROP TABLE public.{table}")
    conn.close()


def run(phase_s: float = 60, per_second: int = 50) -> float:
    """Run the three phases; the seconds they took (what the pictures should show)."""
    from demo.__main__ import seed_customers
    from streaming.session import build_session

    started, began = time.monotonic(), time.time()
    seed_customers(NAMESPACE)
    name = f"preview-orders-{uuid.uuid4().hex[:6]}"
    folder = Path(f"/tmp/kappa-preview/{name}")
    (folder / "inbox").mkdir(parents=True)
    stock = _stock_table()
    sources = _Sources(folder / "inbox", stock)
    sources.publish_for(1, per_second)  # the contract is in the registry before the job starts
    checkpoints = str(folder / "checkpoints")
    spark = build_session("preview")
    spark.sparkContext.setLogLevel("ERROR")
    port = _free_port()  # the job's /metrics
    start_http_server(port, addr="127.0.0.1")
    targets.announce(f"job-{name}", "127.0.0.1", port, {"job": "pipeline"})
    orders, runner = _job(spark, name, checkpoints)
    pipeline_file = _pipeline_file(orders)
    exporter = subprocess.Popen([sys.executable, "-m", "kappa", "lag-exporter", "--pipeline", str(pipeline_file)])
    connectors = [_files_connector(folder), _cdc_connector(folder, stock)]
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
            sources.publish_for(phase_s if phase != "restarted" else phase_s / 3, per_second)
            if phase == "restarted":
                time.sleep(phase_s * 2 / 3)  # no new events: the lag drains
            if worker is not None and phase == "running":
                runner.stop()
                worker.join(120)
        runner.stop()
        _backfill(pipeline_file, began)
    finally:
        for process in (exporter, *connectors):
            process.terminate()
            process.wait(30)
        spark.stop()
        _drop_stock(stock)
    return time.monotonic() - started


def _backfill(pipeline_file: Path, since: float) -> None:
    """Last, a live backfill of the run's events (``kappa backfill``, as ``make backfill``
    runs it) with its progress on /metrics: the dashboard's replay panels."""
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    print(f"backfill of the job's events since {start}", flush=True)
    subprocess.run([sys.executable, "-m", "kappa", "backfill", "--pipeline", str(pipeline_file), "--from", start,
                    "--chunk-events", "1000", "--metrics-port", str(ports.REPLAY_METRICS), "--metrics-linger", "10"],
                   check=True)


def _pipeline_file(orders):
    """The job's settings as a pipeline file, for the lag exporter (which reads pipeline files)."""
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


if __name__ == "__main__":
    command_line = argparse.ArgumentParser(prog="python -m demo.scenario", description=__doc__.split("\n\n")[0])
    command_line.add_argument("--out", type=Path, default=Path("docs/dashboards"), help="the folder for the PNGs")
    args = command_line.parse_args()
    from monitoring.grafana import preview

    minutes = run() / 60 + 0.5
    for drawn in preview.render_all(get_settings().prometheus.url, args.out, minutes):
        print(f"wrote {drawn}")
