"""The backfill DAG on the stack's real Airflow (api-server, scheduler, dag-processor), driven
through its REST API as a user or a CI job would:

- a run whose params are wrong (FROM after TO) fails in its ``validate`` task with batch_replay's
  refusal, and the replay never runs: nothing is written;
- with ClickHouse stopped, the ``replay`` task fails, is retried (the local Airflow retries once),
  fails again, and its failure callback's alert is in the Alertmanager;
- with ClickHouse back, a run with the same params succeeds: every sink holds the replayed rows,
  and the success resolves the alert.
"""
from __future__ import annotations


import psycopg2
import pytest
import requests

from stack import lifecycle, ports
from stack.airflow import PASSWORD, USER, Airflow
from streaming.jobs import pipeline as pipelines
from streaming.plan import serving_table
from tests.conftest import REPO, write_toml
from tests.integration import cdc_items, sink_contents
from tests.integration.kafka_topics import create_topic, wait_for

API = f"http://127.0.0.1:{ports.AIRFLOW}"
ALERTS = f"http://127.0.0.1:{ports.ALERTMANAGER}/api/v2/alerts"


class AirflowApi:
    """Airflow's REST API (v2) with a token of the local admin."""

    def __init__(self) -> None:
        token = requests.post(f"{API}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30)
        assert token.status_code == 201, token.text
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def get(self, path: str, **params) -> dict:
        response = self.http.get(f"{API}/api/v2{path}", params=params, timeout=30)
        assert response.ok, f"GET {path}: {response.status_code} {response.text[:1000]}"
        return response.json()

    def trigger(self, dag_id: str, conf: dict) -> str:
        response = self.http.post(f"{API}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf},
                                  timeout=30)
        assert response.ok, f"trigger {dag_id}: {response.status_code} {response.text[:1000]}"
        return response.json()["dag_run_id"]

    def finished(self, dag_id: str, run_id: str, timeout: float) -> str:
        def state():
            now = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return now if now in ("success", "failed") else None
        return wait_for(state, timeout, f"the {dag_id} run {run_id} to finish", interval=2)

    def tasks(self, dag_id: str, run_id: str) -> dict[str, dict]:
        rows = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {row["task_id"]: row for row in rows}

    def log(self, dag_id: str, run_id: str, task_id: str, attempt: int) -> str:
        body = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{attempt}", full_content="true")
        content = body.get("content", "")
        return content if isinstance(content, str) else "\n".join(
            str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in content)


@pytest.fixture(scope="module")
def airflow_api():
    """The stack's Airflow, started for these tests (installed first if need be) and stopped after,
    so its scheduler does not take CPU from the rest of the suite."""
    service = Airflow()
    was_running = service.pid() is not None
    failures = lifecycle.up(["airflow"], echo=lambda *_: None)
    assert not failures, "\n".join(failures)
    api = AirflowApi()
    wait_for(lambda: api.http.get(f"{API}/api/v2/dags/backfill", timeout=10).ok, 120,
             "the dag-processor to parse orchestration/backfill.py")
    yield api
    if not was_running:
        lifecycle.down(["airflow"], echo=lambda *_: None)


def _alerts(pipeline: str, task_id: str = "replay") -> list[dict]:
    alerts = requests.get(ALERTS, params={"filter": ['alertname="KappaReplayRunFailed"']}, timeout=10).json()
    return [a for a in alerts if a["labels"].get("pipeline") == pipeline and a["status"]["state"] == "active"
            and a["labels"]["task_id"] == task_id]


def test_the_backfill_dag_validates_retries_alerts_and_replays(airflow_api, spark, settings, kafka_bootstrap,
                                                                registry_url, unique, tmp_path):
    topic, namespace, name = f"it.{unique}.cdc.items", f"airflow_{unique}", f"items-{unique}"
    create_topic(kafka_bootstrap, topic, 2)
    items = cdc_items.Items(registry_url, kafka_bootstrap, topic)
    for i in range(20):
        items.change("c", {"id": i, "name": f"item {i}", "qty": i})
    for i in (0, 5):
        items.change("u", {"id": i, "name": f"item {i} v2", "qty": i + 100})
    items.change("d", {"id": 7})
    items.change("c", {"id": 99, "name": "broken", "qty": -5})  # the pipeline's range rule rejects it
    items.flush()
    path = tmp_path / f"{name}.toml"
    write_toml(path, {"name": name, "topic": topic, "namespace": namespace, "key": ["id"],
                      "checkpoint_dir": str(tmp_path / "checkpoints"), "validate": {"range": {"qty": [0, 1000]}}})
    job = str(path)

    # 1. FROM after TO: the validate task fails with batch_replay's refusal; the replay never runs.
    bad = airflow_api.trigger("backfill", {"from": "2026-12-02", "to": "2026-12-01", "pipeline": job})
    assert airflow_api.finished("backfill", bad, 240) == "failed"
    tasks = airflow_api.tasks("backfill", bad)
    assert (tasks["validate"]["state"], tasks["replay"]["state"]) == ("failed", "upstream_failed")
    assert "is not before TO" in airflow_api.log("backfill", bad, "validate", 1)
    assert not _alerts(job, "validate")  # the one who triggered it sees why; nobody is paged
    conn = psycopg2.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (namespace,))
        assert cur.fetchone()[0] == 0  # nothing written, not even a table
    conn.close()

    # 2. ClickHouse stopped: the replay fails, is retried, fails again; the alert reaches the Alertmanager.
    params = {"from": "earliest", "to": "latest", "pipeline": job, "mode": "live", "source": "kafka"}
    lifecycle.down(["clickhouse"], echo=lambda *_: None)
    try:
        failing = airflow_api.trigger("backfill", params)
        assert airflow_api.finished("backfill", failing, 420) == "failed"
        replay = airflow_api.tasks("backfill", failing)["replay"]
        assert (replay["state"], replay["try_number"]) == ("failed", 2), replay
        assert "clickhouse" in airflow_api.log("backfill", failing, "replay", 1).lower()
        alert = wait_for(lambda: _alerts(job), 60, "the KappaReplayRunFailed alert in the Alertmanager")[0]
        assert (alert["labels"]["dag_id"], alert["labels"]["task_id"]) == ("backfill", "replay")
        assert alert["annotations"]["run_id"] == failing and "failed after 2 tries" in alert["annotations"]["summary"]
        assert alert["annotations"]["runbook_url"] == (REPO / "docs" / "runbook.md").as_uri() + "#kappareplayrunfailed"
    finally:
        assert not lifecycle.up(["clickhouse"], echo=lambda *_: None)

    # 3. ClickHouse back: the same params succeed, every sink holds the replayed rows, the alert resolves.
    good = airflow_api.trigger("backfill", params)
    assert airflow_api.finished("backfill", good, 420) == "success", airflow_api.tasks("backfill", good)
    pipeline = pipelines.load(path)
    table = serving_table(pipeline.definition(settings), pipeline, settings, spark)
    # A live replay writes the serving stores (the lake keeps the live job's change history).
    written = {store: getattr(sink_contents, store)(settings, namespace, table)
               for store in ("postgres", "clickhouse", "cassandra")}
    expected = {(i,) for i in range(20) if i != 7}
    assert all(set(rows) == expected for rows in written.values()), {s: sorted(r) for s, r in written.items()}
    assert all(rows[(5,)]["name"] == "item 5 v2" and rows[(5,)]["qty"] == 105 for rows in written.values())
    wait_for(lambda: not _alerts(job), 60, "the alert to resolve after the successful run")
