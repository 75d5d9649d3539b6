"""Every dashboard panel and every alert reads data a running platform exports.

Under load on the local stack: a streaming job, a CDC, an API and a file connector, the lag
exporter and a replay, each serving /metrics and scraped by the stack's Prometheus (file
discovery). Then every panel query of every dashboard is evaluated as Grafana would (a range
query over the run, ``$__rate_interval`` and the variables filled in with this run's job and
connectors) and must return a number; every alert expression must evaluate, and every series it
reads must have data. A panel or an alert on a metric nobody exports fails here.
"""
from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
import requests
import yaml

from monitoring import endpoint
from monitoring.grafana import dashboards
from stack.prometheus import RULES
from tests.conftest import free_port, write_toml
from tests.integration import cdc_items, job_process
from tests.integration.connectors.api_server import OrdersApi
from tests.integration.job_process import REPO
from tests.integration.kafka_topics import create_topic

RATE_INTERVAL = "1m"     # Grafana's $__rate_interval for a 5 s scrape interval is at least 4 scrapes
SELECTOR = re.compile(r"\b(kappa_[a-zA-Z0-9_:]+)(\{[^}]*\})?")


def _probe(port: int, path: str) -> int:
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code


def _range(prometheus_url: str, query: str, start: float) -> tuple[str, list]:
    """(status or error, series) of a range query over [start, now] at the scrape interval."""
    answer = requests.get(f"{prometheus_url}/api/v1/query_range", timeout=30,
                          params={"query": query, "start": start, "end": time.time(), "step": 5}).json()
    if answer["status"] != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}", []
    return "success", answer["data"]["result"]


def _has_numbers(series: list) -> bool:
    return any(not math.isnan(float(value)) for one in series for _, value in one["values"])


def _panel_queries(job: str, connectors: list[str]) -> list[tuple[str, str]]:
    """(dashboard / panel, expr) of every panel, its variables set to this run's processes."""
    out = []
    for name, text in dashboards.render().items():
        for title, expr in dashboards.queries(text):
            filled = (expr.replace("$__rate_interval", RATE_INTERVAL).replace("$pipeline", job)
                      .replace("$connector", "|".join(connectors)))
            out.append((f"{name} / {title}", filled))
    return out


def _alert_series(job: str, connectors: list[str]) -> list[tuple[str, str]]:
    """(alert, selector) of every series an alert expression reads, narrowed to this run's processes."""
    out = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                for metric, matchers in SELECTOR.findall(rule["expr"]):
                    mine = (f'connector=~"{"|".join(connectors)}"' if metric.startswith("kappa_connector")
                            else f'pipeline="{job}"')
                    inner = matchers.strip("{}")
                    out.append((rule["alert"], f"{metric}{{{mine}{', ' + inner if inner else ''}}}"))
    return out


def _alert_expressions() -> list[tuple[str, str]]:
    return [(rule["alert"], rule["expr"]) for path in sorted(RULES.glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture
def api():
    server = OrdersApi(fail_every=5, throttle_requests=(), retry_after_s=1)
    yield server
    server.close()


@pytest.fixture
def cdc_table(postgres_settings, unique):
    conn = psycopg2.connect(postgres_settings.dsn())
    conn.autocommit = True
    table = f"dash_{unique}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE public.{table} (id bigint PRIMARY KEY, note text)")
    yield conn, table
    slot = f"kappa_dash_cdc_{unique}"
    with conn.cursor() as cur:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active", (slot,))
        cur.execute(f"DROP PUBLICATION IF EXISTS {slot}")
        cur.execute(f"DROP TABLE public.{table}")
    conn.close()


def test_every_panel_and_alert_reads_exported_data_under_load(
        settings, kafka_bootstrap, registry_url, prometheus_url, api, cdc_table, run_connector, unique, tmp_path):
    started = time.time() - 5
    topic, name = f"it.{unique}.cdc.items", f"dash-{unique}"
    create_topic(kafka_bootstrap, topic, 2)
    items = cdc_items.Items(registry_url, kafka_bootstrap, topic)
    for i in range(100):
        items.change("c", {"id": i, "name": f"item {i}", "qty": i})
    items.garbage()  # a dead letter
    items.flush()
    path = tmp_path / f"{name}.toml"
    ports = {what: free_port() for what in ("job", "cdc", "api", "files", "lag-exporter")}
    write_toml(path, {"name": name, "topic": topic, "namespace": f"dash_{unique}", "key": ["id"],
                      "sinks": ["postgres"], "checkpoint_dir": str(tmp_path / "checkpoints"),
                      "metrics_port": ports["job"]})

    # The connectors: CDC over a table, the API with a contract-breaking record and 500s, a folder.
    conn, table = cdc_table
    cdc, api_name, files = f"dash-cdc-{unique}", f"dash-api-{unique}", f"dash-files-{unique}"
    for i in range(1, 41):
        api.upsert(i, cdc_items.T0 + i * 1000)
    api.upsert(999, cdc_items.T0 + 50_000, amount="not-a-number")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "payments-1.csv").write_text("payment_id,order_id,amount,currency,method,paid_at\n"
                                          "p-1,1,10.50,EUR,card,2026-11-26T10:00:00Z\n")
    connectors = [
        run_connector("cdc", {"name": cdc, "tables": [f"public.{table}"], "topic_prefix": f"it.dash{unique}",
                              "commit_interval_s": 0.3, "heartbeat_interval_s": 1.0, "metrics_port": ports["cdc"]},
                      log_name="cdc.log"),
        run_connector("api", {"name": api_name, "url": api.url, "topic": f"it.{unique}.api.orders",
                              "contract": "shop.api.orders", "cursor": "updated_since", "id_field": "order_id",
                              "page_size": 10, "poll_interval_s": 0.5, "backoff_initial_s": 0.05,
                              "backoff_max_s": 0.2, "start": 0, "metrics_port": ports["api"]}, log_name="api.log"),
        run_connector("files", {"name": files, "topic": f"it.{unique}.files.payments",
                                "contract": "shop.files.payments", "directory": str(inbox), "key": ["payment_id"],
                                "time_field": "paid_at", "poll_interval_s": 0.5, "metrics_port": ports["files"]},
                      log_name="files.log"),
    ]
    job = job_process.run_file(path, tmp_path, "job")
    exporter = subprocess.Popen([sys.executable, "-m", "kappa", "lag-exporter", "--pipeline", str(path),
                                 "--metrics-port", str(ports["lag-exporter"])], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
    replay = subprocess.Popen([sys.executable, "-m", "kappa", "backfill", "--pipeline", str(path), "--from", "earliest",
                               "--to", "latest", "--sinks", "postgres", "--chunk-events", "20",
                               "--metrics-port", str(free_port()), "--metrics-linger", "10"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop = threading.Event()

    def load() -> None:  # events keep arriving at every source while Prometheus scrapes
        i = 100
        while not stop.wait(0.2):
            i += 1
            items.change("c", {"id": i, "name": f"item {i}", "qty": i})
            items.flush()
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO public.{table} VALUES (%s, 'x')", (i,))
            api.upsert(i, cdc_items.T0 + i * 1000)
            if i % 25 == 0:
                (inbox / f"payments-{i}.csv").write_text("payment_id,order_id,amount,currency,method,paid_at\n"
                                                         f"p-{i},{i},1.00,EUR,card,2026-11-26T10:00:00Z\n")

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    mine = [cdc, api_name, files]
    panels, series = _panel_queries(name, mine), _alert_series(name, mine)
    try:
        def missing() -> list[str] | None:
            gaps = [f"{what}: {query}" for what, query in panels + series
                    if not _has_numbers(_range(prometheus_url, query, started)[1])]
            return gaps or None

        deadline = time.monotonic() + 240
        gaps = missing()
        while gaps and time.monotonic() < deadline:
            assert job.poll() is None, "\n".join(job_process.log_lines(job)[-20:])
            time.sleep(5)
            gaps = missing()
        assert not gaps, "no data for:\n" + "\n".join(gaps)
        for process, port in ports.items():  # what Kubernetes' probes ask each of them (k8s/)
            for probe in (endpoint.LIVENESS_PATH, endpoint.READINESS_PATH):
                assert _probe(port, probe) == 200, f"{process}: {probe} answered {_probe(port, probe)}"
        for alert, expr in _alert_expressions():  # each evaluates (its value may well be "not firing")
            status, _ = _range(prometheus_url, expr, started)
            assert status == "success", f"{alert}: {status}"
        assert replay.wait(300) == 0, replay.stdout.read()[-3000:]
    finally:
        stop.set()
        loader.join(10)
        job.send_signal(signal.SIGTERM)
        exporter.terminate()
        for proc in connectors:
            proc.send_signal(signal.SIGTERM)
        for proc in (job, exporter, *connectors):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if replay.poll() is None:
            replay.kill()
    assert job.returncode == 0, "\n".join(job_process.log_lines(job)[-20:])
    print(json.dumps({"panels": len(panels), "alert series": len(series)}))
