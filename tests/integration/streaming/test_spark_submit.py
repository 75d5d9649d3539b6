"""A pipeline launched by spark-submit, as the Spark operator's driver pod launches it (k8s/base/streaming):
the command line's master, jars and Spark settings hold, not the session's local defaults, and the
job writes its sink and exits 0."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pyspark

from stack.spark import connector_jars
from tests.conftest import write_toml
from tests.integration import cdc_items
from tests.integration.job_process import REPO
from tests.integration.kafka_topics import create_topic


def test_a_job_under_spark_submit_keeps_the_command_lines_settings(settings, kafka_bootstrap, registry_url, unique,
                                                                    tmp_path):
    topic, namespace = f"it.{unique}.submit.items", f"submit_{unique}"
    create_topic(kafka_bootstrap, topic, 2)
    items = cdc_items.Items(registry_url, kafka_bootstrap, topic)
    for i in range(50):
        items.change("c", {"id": i, "name": f"item {i}", "qty": i})
    items.flush()
    path = tmp_path / "items.toml"
    write_toml(path, {"name": f"submit-{unique}", "topic": topic, "namespace": namespace, "key": ["id"],
                      "sinks": ["postgres"], "checkpoint_dir": str(tmp_path / "checkpoints")})
    home = Path(pyspark.__file__).parent
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
    submitted = subprocess.run(
        [str(home / "bin" / "spark-submit"), "--master", "local[1]", "--jars", ",".join(connector_jars()),
         "--conf", "spark.sql.shuffle.partitions=3", "--conf", "spark.driver.extraJavaOptions=-Xss16m",
         str(REPO / "streaming" / "__main__.py"), "run", str(path), "--available-now"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    conn = psycopg2.connect(settings.postgres.dsn())
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*), sum(qty) FROM {namespace}.items")
        assert cur.fetchone() == (50, sum(range(50)))
    conn.close()
    # The query ran with the command line's settings: its checkpoint records them.
    offsets = tmp_path / "checkpoints" / f"submit-{unique}" / "offsets" / "0"
    conf = json.loads(offsets.read_text().splitlines()[1])["conf"]
    assert conf["spark.sql.shuffle.partitions"] == "3"
