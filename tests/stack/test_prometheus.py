"""Prometheus: ready, and every scrape target (the stack's servers) up."""
import time

import requests


def test_ready_and_every_target_up(prometheus_url, registry_url, clickhouse_settings):
    assert requests.get(f"{prometheus_url}/-/ready", timeout=5).status_code == 200
    deadline = time.monotonic() + 60
    while True:
        targets = requests.get(f"{prometheus_url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        # The stack's own servers; platform processes come and go (file_sd) and are not asserted here.
        health = {t["labels"]["job"]: t["health"] for t in targets if t["scrapePool"] != "platform"}
        if health and all(h == "up" for h in health.values()):
            break
        assert time.monotonic() < deadline, f"targets not all up after 60s: {health}"
        time.sleep(1)
    assert {"prometheus", "schema-registry", "clickhouse", "s3"} <= set(health)
    # The scraped series are queryable.
    answer = requests.get(f"{prometheus_url}/api/v1/query", params={"query": "up"}, timeout=5).json()
    assert answer["status"] == "success" and len(answer["data"]["result"]) >= 4
