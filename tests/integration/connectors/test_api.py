"""The API connector against a real local HTTP server that paginates and fails with 500s and 429s."""
import collections
import signal

import pytest

from tests.integration.connectors.api_server import OrdersApi
from tests.integration.kafka_topics import read_topic, wait_for

T0 = 1_764_115_200_000


@pytest.fixture
def api():
    server = OrdersApi(fail_every=4, throttle_requests=(5, 17), retry_after_s=1, delay_s=0.05)
    yield server
    server.close()


def published(bootstrap, registry_url, topic):
    return [r["value"] for r in read_topic(bootstrap, registry_url, topic, committed_only=True)]


def test_every_record_exactly_once_across_a_kill_and_restart(api, kafka_bootstrap, registry_url, run_connector, unique):
    for i in range(1, 241):
        api.upsert(i, T0 + (i // 3) * 1000)          # three records share every timestamp
    api.upsert(999, T0 + 5_000, amount="not-a-number")  # breaks the contract: goes to the DLQ
    name = f"api-{unique}"
    topic = f"it.{unique}.api.orders"
    config = {"name": name, "url": api.url, "topic": topic, "contract": "shop.api.orders", "cursor": "updated_since", "id_field": "order_id",
              "page_size": 20, "poll_interval_s": 0.2, "rate_limit_per_s": 50, "backoff_initial_s": 0.05,
              "backoff_max_s": 0.5, "start": 0}
    before = {(v["order_id"], v["updated_at"]) for v in published(kafka_bootstrap, registry_url, topic)
              if v["source"]["connector"] == name}
    assert not before

    first = run_connector("api", config)
    wait_for(lambda: len([v for v in published(kafka_bootstrap, registry_url, topic)
                          if v["source"]["connector"] == name]) >= 60, 60, "the first pages")
    first.send_signal(signal.SIGKILL)   # mid-way through the window
    first.wait(10)

    # While it is down: 20 orders change, 30 are new.
    for i in range(1, 21):
        api.upsert(i, T0 + 500_000 + i, status="PAID")
    for i in range(300, 330):
        api.upsert(i, T0 + 600_000 + i)

    second = run_connector("api", config)
    expected_final = {(o["order_id"], o["updated_at"]) for o in api.orders.values() if o["order_id"] != 999}

    def complete():
        mine = [v for v in published(kafka_bootstrap, registry_url, topic) if v["source"]["connector"] == name]
        versions = {(v["order_id"], int(v["updated_at"].timestamp() * 1000)) for v in mine}
        return mine if expected_final <= versions else None

    mine = wait_for(complete, 90, "every current order version")
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0

    versions = collections.Counter((v["order_id"], int(v["updated_at"].timestamp() * 1000)) for v in mine)
    assert max(versions.values()) == 1, [k for k, n in versions.items() if n > 1][:5]   # nothing twice
    assert len({v["event_id"] for v in mine}) == len(mine)
    # Every record version the API showed is there: all current ones, and old versions of updated
    # orders only as far as the connector saw them before they changed (never twice).
    assert expected_final <= set(versions)
    assert set(versions) - expected_final <= {(i, T0 + (i // 3) * 1000) for i in range(1, 21)}

    dead = [r for r in read_topic(kafka_bootstrap, registry_url, f"{topic}.dlq", decode=False, committed_only=True)
            if r["headers"].get("source.connector") == name.encode()]
    assert len(dead) == 1 and b"amount" in dead[0]["headers"]["error"]
    assert b'"order_id": 999' in dead[0]["value"]

    statuses = [status for _, status in api.requests]
    assert 500 in statuses and 429 in statuses
    # The request after each 429 waited for Retry-After (1 s).
    for i, (when, status) in enumerate(api.requests[:-1]):
        if status == 429:
            assert api.requests[i + 1][0] - when >= 0.95
