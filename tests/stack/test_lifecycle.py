"""The local stack's command line: status, failures that name the service, data that survives down/up.

These run after tests/integration (pytest collects folders in name order) because the last one
stops and restarts the whole stack.
"""
import io
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import clickhouse_connect
import psycopg2
import requests
from cassandra.cluster import Cluster
from confluent_kafka import Consumer, Producer, TopicPartition
from minio import Minio

from stack import lifecycle

REPO = Path(__file__).resolve().parents[2]


def stack_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stack", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_status_reports_every_service(kafka_bootstrap):
    result = stack_cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()[1:]
    names = [line.split()[0] for line in lines]
    assert names[:len(lifecycle.SERVICES)] == [cls.name for cls in lifecycle.SERVICES]
    assert set(names[len(lifecycle.SERVICES):]) <= {cls.name for cls in lifecycle.OPTIONAL}  # only if running
    for line in lines:
        name, state, port, pid, log = line.split()
        assert state == "up" and port.isdigit() and pid.isdigit(), line
        assert Path(log).exists()


def test_a_service_that_cannot_start_fails_up_with_its_log(tmp_path):
    # A file where the engine's data folder should be: the ClickHouse server dies at start-up.
    (tmp_path / "clickhouse" / "data").mkdir(parents=True)
    (tmp_path / "clickhouse" / "data" / "engine").write_text("not a folder")
    result = stack_cli("up", "clickhouse", env={"KAPPA_STACK__HOME": str(tmp_path),
                                                "KAPPA_PORTS__CLICKHOUSE_HTTP": str(free_port())})
    assert result.returncode != 0
    assert "clickhouse failed to start" in result.stderr
    assert "exited during start-up" in result.stderr
    assert "FileExistsError" in result.stderr  # the last lines of the service's own log


def test_a_port_held_by_another_process_is_named(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = stack_cli("up", "s3", env={"KAPPA_STACK__HOME": str(tmp_path), "KAPPA_PORTS__S3": str(port)})
    assert result.returncode != 0
    assert f"port {port} is taken" in result.stderr and "s3" in result.stderr


def test_data_survives_down_and_up(settings, kafka_bootstrap, registry_url, cassandra_settings, s3_settings,
                                   clickhouse_settings, postgres_settings):
    marker = uuid.uuid4().hex[:10]
    topic = f"it.stack.survive-{marker}"
    # One marker in every store.
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(topic, value=marker)
    assert producer.flush(30) == 0
    subject = f"{topic}-value"
    schema = '{"type": "record", "name": "M", "fields": [{"name": "m", "type": "string"}]}'
    assert requests.post(f"{registry_url}/subjects/{subject}/versions", json={"schema": schema}, timeout=10).ok
    cluster = Cluster(cassandra_settings.hosts, port=cassandra_settings.port)
    session = cluster.connect()
    session.execute(f"CREATE KEYSPACE ks_{marker} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}")
    session.execute(f"CREATE TABLE ks_{marker}.t (k text PRIMARY KEY)")
    session.execute(f"INSERT INTO ks_{marker}.t (k) VALUES (%s)", (marker,))
    cluster.shutdown()
    s3 = Minio(s3_settings.endpoint, access_key=s3_settings.access_key, secret_key=s3_settings.secret_key,
               secure=s3_settings.secure)
    s3.make_bucket(f"survive-{marker}")
    s3.put_object(f"survive-{marker}", "marker", io.BytesIO(marker.encode()), len(marker))
    ch = clickhouse_connect.get_client(host=clickhouse_settings.host, port=clickhouse_settings.port)
    ch.command(f"CREATE TABLE default.survive_{marker} (m String) ENGINE = MergeTree ORDER BY m")
    ch.insert(f"default.survive_{marker}", [[marker]], column_names=["m"])
    pg = psycopg2.connect(postgres_settings.dsn())
    with pg, pg.cursor() as cur:
        cur.execute(f"CREATE TABLE survive_{marker} (m text)")
        cur.execute(f"INSERT INTO survive_{marker} VALUES (%s)", (marker,))
    pg.close()

    down = stack_cli("down")
    assert down.returncode == 0, down.stderr
    assert all(not s.up for s in lifecycle.status())
    started = time.monotonic()
    up = stack_cli("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert time.monotonic() - started < 120  # warm start from stopped

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{marker}",
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    msg, deadline = None, time.monotonic() + 30
    while msg is None and time.monotonic() < deadline:
        candidate = consumer.poll(1)
        msg = candidate if candidate is not None and not candidate.error() else None
    consumer.close()
    assert msg is not None and msg.value().decode() == marker
    assert requests.get(f"{registry_url}/subjects/{subject}/versions", timeout=10).json() == [1]
    cluster = Cluster(cassandra_settings.hosts, port=cassandra_settings.port)
    assert cluster.connect().execute(f"SELECT k FROM ks_{marker}.t").one()[0] == marker
    cluster.connect().execute(f"DROP KEYSPACE ks_{marker}")
    cluster.shutdown()
    assert s3.get_object(f"survive-{marker}", "marker").read().decode() == marker
    s3.remove_object(f"survive-{marker}", "marker")
    s3.remove_bucket(f"survive-{marker}")
    ch = clickhouse_connect.get_client(host=clickhouse_settings.host, port=clickhouse_settings.port)
    assert ch.query(f"SELECT m FROM default.survive_{marker}").result_rows == [(marker,)]
    ch.command(f"DROP TABLE default.survive_{marker}")
    pg = psycopg2.connect(postgres_settings.dsn())
    with pg, pg.cursor() as cur:
        cur.execute(f"SELECT m FROM survive_{marker}")
        assert cur.fetchone()[0] == marker
        cur.execute(f"DROP TABLE survive_{marker}")
    pg.close()
