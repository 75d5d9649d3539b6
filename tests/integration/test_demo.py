"""``make demo``'s job, as a newcomer runs it (``python -m demo``): events published, the customers
dimension seeded, the orders pipeline caught up into all four stores, and what it prints agrees
across them. Its own checkpoint folder, so it reads the demo topic from its start."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO


def test_the_demo_runs_the_orders_pipeline_into_every_store(unique, tmp_path, kafka_bootstrap, postgres_settings,
                                                             clickhouse_settings, cassandra_settings, s3_settings):
    namespace = f"demo_{unique}"
    env = dict(os.environ, KAPPA_STREAMING__CHECKPOINT_DIR=str(tmp_path / "checkpoints"))
    run = subprocess.run([sys.executable, "-m", "demo", "--events", "2000", "--namespace", namespace], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    out = run.stdout
    assert "published 2000 order events to shop.api.orders" in out
    counts = {store: int(re.search(rf"^{store}\s+{namespace}\.[^\n]*?(\d+) orders", out, re.M).group(1))
              for store in ("PostgreSQL", "ClickHouse", "Cassandra")}
    assert len(set(counts.values())) == 1 and counts["PostgreSQL"] > 0, out  # the orders, after their updates
    changes = int(re.search(r"^Delta lake .*: (\d+) changes", out, re.M).group(1))
    assert changes > counts["PostgreSQL"], out  # the lake keeps every change of every order
    assert re.search(r"ClickHouse deltaLake\(\) counts (\d+)\)", out).group(1) == str(changes), out
    segments = re.search(r"orders by customer segment .*?: (.*)$", out, re.M).group(1)
    assert "gold" in segments and "silver" in segments and "bronze" in segments, out
