"""A Kafka Connect standalone worker running Debezium's PostgreSQL connector: the peer the CDC
connector is measured against (``python bench/connectors.py --peer debezium``).

Everything comes from Maven Central (``stack/maven/kafka-connect/pom.xml``: connect-runtime 4.1.1,
the stack broker's release, and ``debezium-connector-postgres`` 3.5.0.Final, built against it), run
as Kafka's own ``connect-standalone.sh`` runs it (``ConnectStandalone``, the JVM options of
``kafka-run-class.sh``). Confluent's Avro converter is not on Maven Central, so the worker writes
Kafka's ``JsonConverter`` with schemas. Not part of ``make up``: one worker per connector, started by
whoever measures it and gone with it.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from kappa.settings import Settings
from stack.process import ServiceError
from stack.provision import java17_home, maven_classpath

CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
LOG4J2 = """\
status = error
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %p %c{1} %m%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = stderr
"""


def debezium_postgres(name: str, settings: Settings, *, tables: list[str], topic_prefix: str, slot: str,
                      publication: str, snapshot: str = "initial", **extra: str) -> dict[str, str]:
    """The properties of a Debezium PostgreSQL connector on the settings' database, with its own
    slot and publication (pgoutput, as the CDC connector reads), so it runs beside the CDC connector."""
    pg = settings.postgres
    return {
        "name": name, "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "tasks.max": "1",
        "plugin.name": "pgoutput", "database.hostname": pg.host, "database.port": str(pg.port),
        "database.user": pg.user, "database.password": pg.password, "database.dbname": pg.dbname,
        "topic.prefix": topic_prefix, "table.include.list": ",".join(tables), "slot.name": slot,
        "publication.name": publication, "publication.autocreate.mode": "filtered", "snapshot.mode": snapshot,
        **extra,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _properties(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


class ConnectWorker:
    """One standalone worker process running one connector; its offsets in ``folder``, so a second
    start resumes where the first one stopped (as a Connect deployment would)."""

    def __init__(self, connector: dict[str, str], folder: Path, settings: Settings,
                 producer: dict[str, str] | None = None) -> None:
        self.connector, self.folder, self.settings = connector, folder, settings
        self.producer = producer or {}
        self.rest_port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return self.connector["name"]

    @property
    def log_file(self) -> Path:
        return self.folder / "connect.log"

    def _write_files(self) -> tuple[Path, Path, Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        worker = {
            "bootstrap.servers": self.settings.kafka.bootstrap_servers,
            "key.converter": CONVERTER, "value.converter": CONVERTER,
            "key.converter.schemas.enable": "true", "value.converter.schemas.enable": "true",
            "offset.storage.file.filename": str(self.folder / "offsets"), "offset.flush.interval.ms": "1000",
            "listeners": f"http://127.0.0.1:{self.rest_port}",
            # the classpath holds the one plugin: no plugin.path to scan
            "plugin.discovery": "only_scan",
            **{f"producer.{key}": value for key, value in self.producer.items()},
        }
        paths = self.folder / "worker.properties", self.folder / f"{self.name}.properties", self.folder / "log4j2.properties"
        for path, text in zip(paths, (_properties(worker), _properties(self.connector), LOG4J2)):
            path.write_text(text)
        return paths

    def launch(self) -> None:
        """Start the worker process (``start`` also waits for the connector's task to run)."""
        worker, connector, log4j2 = self._write_files()
        classpath = os.pathsep.join(maven_classpath("kafka-connect"))
        command = [str(java17_home() / "bin" / "java"), "-Xms256m", "-Xmx1g", "-server", "-XX:+UseG1GC",
                   "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                   "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
                   f"-Dlog4j2.configurationFile={log4j2}", "-cp", classpath,
                   "org.apache.kafka.connect.cli.ConnectStandalone", str(worker), str(connector)]
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> int:
        """Start the worker; returns its pid once the connector's task runs (Connect's REST status)."""
        self.launch()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"the Connect worker of {self.name} exited {self.process.returncode}: "
                                   f"{self.log_file.read_text()[-3000:]}")
            state = self.state()
            if state == "RUNNING":
                return self.process.pid
            if state == "FAILED":
                raise ServiceError(f"{self.name} failed in its Connect worker: {self.status()}")
            time.sleep(0.2)
        raise ServiceError(f"{self.name}: its task did not run within 120 s (log: {self.log_file})")

    def status(self) -> dict:
        try:
            answer = requests.get(f"http://127.0.0.1:{self.rest_port}/connectors/{self.name}/status", timeout=2)
            return answer.json() if answer.status_code == 200 else {}
        except requests.RequestException:
            return {}

    def state(self) -> str | None:
        tasks = self.status().get("tasks") or []
        return tasks[0].get("state") if tasks else None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, as an operator stops a worker: Connect flushes the offsets it has."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
