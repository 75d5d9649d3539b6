"""The consumer lag of a streaming job, seen from outside it: a stopped job's lag counts what
arrived since (offsets, and seconds that grow), in the lag exporter, in Prometheus, and in Kafka's
own ``kafka-consumer-groups --describe`` (the job commits each batch's end to its group); the
job-down alert reaches a webhook through the local Alertmanager; after a restart the lag drains
to 0 everywhere.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stack import ports
from monitoring import runbook
from stack.prometheus import Prometheus
from tests.conftest import free_port, write_toml
from tests.integration import cdc_items, job_process
from tests.integration.job_process import REPO
from tests.integration.kafka_topics import create_topic, wait_for


def _exported(port: int, job: str) -> dict[str, dict[int, float]]:
    """{metric: {partition: value}} of ``job`` on the exporter's /metrics."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    found: dict[str, dict[int, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("kappa_streaming_lag_") and sample.labels.get("pipeline") == job:
                found.setdefault(sample.name, {})[int(sample.labels["partition"])] = sample.value
    return found


def _group_lag(group: str, topic: str) -> dict[int, int] | None:
    """LAG per partition of ``group`` on ``topic``, as ``kafka-consumer-groups --describe`` prints it."""
    out = subprocess.run([sys.executable, "-m", "stack", "kafka-tool", "consumer-groups", "--describe", "--group",
                          group], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line.split() for line in out.stdout.splitlines()]
    header = next((line for line in lines if line[:1] == ["GROUP"]), None)
    if header is None:
        return None
    at = {name: header.index(name) for name in ("TOPIC", "PARTITION", "LAG")}
    return {int(line[at["PARTITION"]]): int(line[at["LAG"]]) for line in lines
            if len(line) == len(header) and line[at["TOPIC"]] == topic and line[at["LAG"]].isdigit()}


def _status(path) -> dict:
    """``kappa status --json`` of one pipeline."""
    out = subprocess.run([sys.executable, "-m", "kappa", "status", "--pipeline", str(path), "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    (status,) = json.loads(out.stdout)
    return status


def _prometheus_lag(prometheus_url: str, job: str) -> float | None:
    answer = requests.get(f"{prometheus_url}/api/v1/query", timeout=10,
                          params={"query": f'sum(kappa_streaming_lag_offsets{{pipeline="{job}"}})'}).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


class _Webhook(BaseHTTPRequestHandler):
    """Alertmanager's webhook receiver: keeps every alert it is sent."""
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Webhook.received.extend(body["alerts"])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _alert_now(name: str, job: str, path) -> None:
    """The real alert's expression for ``job`` without its ``for`` and with its five minutes without
    a batch made 20 seconds (a test cannot wait 5 minutes; the job's own batches, scraped while it
    ran, would hold the alert back that long), as a local rule of the stack's Prometheus."""
    deployed = Prometheus().rules_dir  # the rules the stack's Prometheus evaluates (runbook links absolute)
    rules = [r for f in sorted(deployed.glob("*.yml")) for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    rule = next(r for r in rules if r.get("alert") == name)
    expr = rule["expr"].strip().replace("kappa_pipeline:streaming_batches:rate5m",
                                        "sum by (pipeline) (rate(kappa_streaming_batches_total[20s]))")
    quick = {**rule, "expr": f'({expr}) and on (pipeline) kappa_pipeline:streaming_lag_offsets:sum{{pipeline="{job}"}}',
             "for": "0s"}
    path.write_text(yaml.safe_dump({"groups": [{"name": f"test-{job}", "interval": "5s", "rules": [quick]}]}))


def _reload_prometheus(prometheus_url: str) -> None:
    assert requests.post(f"{prometheus_url}/-/reload", timeout=30).status_code == 200


def test_a_stopped_jobs_lag_counts_what_arrived_and_drains_after_a_restart(
        settings, kafka_bootstrap, registry_url, prometheus_url, alertmanager_url, unique, tmp_path):
    topic, namespace, name = f"it.{unique}.cdc.items", f"lag_{unique}", f"lag-{unique}"
    create_topic(kafka_bootstrap, topic, 2)
    items = cdc_items.Items(registry_url, kafka_bootstrap, topic)
    for i in range(20):
        items.change("c", {"id": i, "name": f"item {i}", "qty": i})
    items.flush()
    path = tmp_path / f"{name}.toml"
    write_toml(path, {"name": name, "topic": topic, "namespace": namespace, "key": ["id"], "sinks": ["postgres"],
                      "checkpoint_dir": str(tmp_path / "checkpoints")})
    first = job_process.run_file(path, tmp_path, "first", available_now=True)
    assert first.wait(300) == 0, "\n".join(job_process.log_lines(first)[-20:])
    assert _group_lag(name, topic) == {0: 0, 1: 0}  # the job committed its batches' ends to its group

    port = free_port()
    exporter = subprocess.Popen([sys.executable, "-m", "kappa", "lag-exporter", "--pipeline", str(path),
                                 "--metrics-port", str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    try:
        wait_for(lambda: _port_open(port), 60, "the lag exporter's /metrics")
        assert sum(_exported(port, name)["kappa_streaming_lag_offsets"].values()) == 0

        # The job is stopped; 15 more records arrive.
        for i in range(100, 115):
            items.change("c", {"id": i, "name": f"item {i}", "qty": i})
        items.flush()
        lag = _exported(port, name)
        assert sum(lag["kappa_streaming_lag_offsets"].values()) == 15
        assert sum(_group_lag(name, topic).values()) == 15  # Kafka's tooling sees the same
        waited = max(lag["kappa_streaming_lag_seconds"].values())
        time.sleep(2)
        assert max(_exported(port, name)["kappa_streaming_lag_seconds"].values()) >= waited + 1.5  # it grows
        wait_for(lambda: _prometheus_lag(prometheus_url, name) == 15, 60, "Prometheus to scrape the lag")
        status = _status(path)  # kappa status reads the same sources, and says the job does not run
        assert (status["query"], status["version"], status["running"], status["lag_events"]) == (name, 1, None, 15)
        assert status["lag_seconds"] >= waited and status["last_batch"] is not None

        # The job-down alert reaches a webhook receiver through the stack's Alertmanager.
        webhook = ThreadingHTTPServer(("127.0.0.1", ports.ALERT_WEBHOOK), _Webhook)
        threading.Thread(target=webhook.serve_forever, daemon=True).start()
        rule = Prometheus().home / "rules.d" / f"test-{unique}.yml"
        try:
            _alert_now("KappaStreamingJobDown", name, rule)
            _reload_prometheus(prometheus_url)
            alert = wait_for(lambda: next((a for a in _Webhook.received if a["labels"].get("pipeline") == name
                                           and a["status"] == "firing"), None), 120, "the alert at the webhook")
            assert alert["labels"]["alertname"] == "KappaStreamingJobDown"
            assert alert["annotations"]["runbook_url"] == runbook.base_url(settings) + "#kappastreamingjobdown"
            assert alert["annotations"]["runbook_url"].startswith("file:///")  # absolute: the pager can open it
            assert "15 records wait" in alert["annotations"]["summary"]
        finally:
            rule.unlink(missing_ok=True)
            _reload_prometheus(prometheus_url)
            webhook.shutdown()
            webhook.server_close()

        # Restarted, the job catches up: 0 everywhere.
        second = job_process.run_file(path, tmp_path, "second")
        status = wait_for(lambda: (s := _status(path))["lag_events"] == 0 and s, 300, "kappa status: no lag")
        assert status["running"] and f"kappa job {name}" in status["running"]
        second.terminate()
        assert second.wait(120) == 0, "\n".join(job_process.log_lines(second)[-20:])
        lag = _exported(port, name)
        assert sum(lag["kappa_streaming_lag_offsets"].values()) == 0
        assert set(lag["kappa_streaming_lag_seconds"].values()) == {0.0}
        assert _group_lag(name, topic) == {0: 0, 1: 0}
        wait_for(lambda: _prometheus_lag(prometheus_url, name) == 0, 60, "Prometheus to see the lag drain")
    finally:
        exporter.terminate()
        out, _ = exporter.communicate(30)
    assert exporter.returncode == 0, out[-2000:]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
