"""Fixtures shared by every test: settings, live-service checks and the one SparkSession.

Integration tests reach the servers named by the settings layer (the local stack by default;
``make test`` starts it). A server that does not answer fails the test with what to do; it is
never skipped, so a stack that did not come up cannot pass as a green run.
"""
from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kappa.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]  # the checkout


# Tests whose tools are built with `go install` (minutes on a fresh machine): started in the
# background at collection, at the lowest CPU priority, so they are ready by the time these run.
NEEDS_GO_TOOLS = ("tests/unit/k8s/", "tests/unit/monitoring/test_prometheus_rules.py")


def _build_go_tools() -> None:
    from stack import k8s_tools
    from stack.prometheus import kubernetes_promtool

    for build in (kubernetes_promtool, k8s_tools.provision):
        try:
            build()
        except Exception:  # noqa: BLE001 - the test that needs the tool builds it again and fails with the cause
            pass


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.nodeid.startswith(NEEDS_GO_TOOLS) for item in session.items):
        threading.Thread(target=_build_go_tools, name="go-tools", daemon=True).start()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Fail (not skip) when a service the test needs does not answer."""
    if not _reachable(host, port):
        pytest.fail(
            f"{name} is not reachable at {host}:{port}. Start the local stack with `make up` "
            f"(its log is .stack/{name}/{name}.log) or point KAPPA_* settings at a running cluster.",
            pytrace=False,
        )


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    first = settings.kafka.bootstrap_servers.split(",")[0]
    require("kafka", *_host_port(first))
    return settings.kafka.bootstrap_servers


@pytest.fixture(scope="session")
def registry_url(settings: Settings, kafka_bootstrap: str) -> str:
    url = settings.registry.url
    require("schema-registry", *_host_port(url.split("//", 1)[1].split("/", 1)[0]))
    return url


@pytest.fixture(scope="session")
def cassandra_settings(settings: Settings):
    require("cassandra", settings.cassandra.hosts[0], settings.cassandra.port)
    return settings.cassandra


@pytest.fixture(scope="session")
def s3_settings(settings: Settings):
    require("s3", *_host_port(settings.s3.endpoint))
    return settings.s3


@pytest.fixture(scope="session")
def clickhouse_settings(settings: Settings):
    require("clickhouse", settings.clickhouse.host, settings.clickhouse.port)
    return settings.clickhouse


@pytest.fixture(scope="session")
def postgres_settings(settings: Settings):
    require("postgres", settings.postgres.host, settings.postgres.port)
    return settings.postgres


@pytest.fixture(scope="session")
def prometheus_url(settings: Settings) -> str:
    require("prometheus", *_host_port(settings.prometheus.url.split("//", 1)[1]))
    return settings.prometheus.url


@pytest.fixture(scope="session")
def alertmanager_url() -> str:
    """The local stack's Alertmanager (its routing sends every alert to 127.0.0.1:ALERT_WEBHOOK)."""
    from stack import ports

    require("alertmanager", "127.0.0.1", ports.ALERTMANAGER)
    return f"http://127.0.0.1:{ports.ALERTMANAGER}"


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator:
    """The one SparkSession of the test run (it takes ~10 s to start), with Kafka/Avro/s3a/JDBC jars."""
    from streaming.session import build_session

    session = build_session("tests", settings)
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


def free_port() -> int:
    """A port nothing listens on now (for a process's /metrics in a test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_toml(path, values: dict) -> None:
    """A TOML file (strings, numbers, booleans, lists, tables as inline tables) for a connector's
    --config or a pipeline file."""
    def literal(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(literal(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{literal(k)} = {literal(v)}" for k, v in value.items()) + " }"
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    path.write_text("".join(f"{key} = {literal(value)}\n" for key, value in values.items()))


@pytest.fixture
def run_connector(tmp_path):
    """Start ``python -m connectors.<name> --config <toml>`` as a real process; stopped after the test."""
    import subprocess
    import sys
    from pathlib import Path

    started = []

    def start(module: str, config: dict, log_name: str = "connector.log"):
        config_path = tmp_path / f"{config['name']}.toml"
        write_toml(config_path, config)
        log = open(tmp_path / log_name, "ab")
        proc = subprocess.Popen([sys.executable, "-m", "kappa", "connector", module, "--config", str(config_path)],
                                cwd=Path(__file__).resolve().parents[1], stdout=log, stderr=subprocess.STDOUT)
        proc.log_path = tmp_path / log_name
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def unique() -> str:
    """A short random suffix for topic, table and bucket names, so tests never share state."""
    return uuid.uuid4().hex[:10]
