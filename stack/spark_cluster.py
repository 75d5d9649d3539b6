"""A Spark standalone cluster for the local stack: a master and two workers, each its own process,
run from the pinned pyspark's own jars (``spark-class``), so a job's executors live in other JVMs
than its driver, as on a real cluster (``python -m stack up spark``; not part of ``make up``).

The executors reach the platform's code the way the venv does (the checkout is installed in it,
editable): a driver started from the venv names its interpreter (``PYSPARK_PYTHON``) and the
workers' Python workers import the same packages. The connector jars are where ``make up``
resolved them, on the same machine: with the setting ``spark.shared_jars`` the executors put them
on their class path as they are, instead of each fetching a copy (``spark.jars``, ~680 MB) from
the driver.
"""
from __future__ import annotations

import os
from pathlib import Path

import pyspark
import requests

from stack import ports
from stack.provision import java17_home
from stack.service import Service

SPARK_HOME = Path(pyspark.__file__).resolve().parent
MASTER_URL = f"spark://127.0.0.1:{ports.SPARK_MASTER}"


def _environment(home: Path) -> dict[str, str]:
    return {"SPARK_HOME": str(SPARK_HOME), "JAVA_HOME": str(java17_home()), "SPARK_LOG_DIR": str(home),
            "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def registered_workers() -> list[dict]:
    """The workers the master knows, as its /json says (state ALIVE or not)."""
    try:
        answer = requests.get(f"http://127.0.0.1:{ports.SPARK_MASTER_UI}/json/", timeout=2)
        return answer.json().get("workers", []) if answer.status_code == 200 else []
    except (requests.RequestException, ValueError):
        return []


class SparkMaster(Service):
    name = "spark-master"
    port = ports.SPARK_MASTER
    start_timeout = 90.0
    stop_grace = 15.0

    def command(self) -> list[str]:
        return [str(SPARK_HOME / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
                "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(ports.SPARK_MASTER_UI)]

    def environment(self) -> dict[str, str]:
        return {**_environment(self.home), "SPARK_DAEMON_MEMORY": "512m"}

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{ports.SPARK_MASTER_UI}/json/", timeout=2).status_code == 200
        except requests.RequestException:
            return False


class _SparkWorker(Service):
    """A worker with one core and 2 GiB for executors, registered with the master."""

    start_timeout = 90.0
    stop_grace = 15.0
    depends_on = ("spark-master",)
    web_port = 0

    def command(self) -> list[str]:
        return [str(SPARK_HOME / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker", MASTER_URL,
                "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.web_port),
                "--cores", "1", "--memory", "2g", "--work-dir", str(self.home / "work")]

    def environment(self) -> dict[str, str]:
        return {**_environment(self.home), "SPARK_DAEMON_MEMORY": "256m",
                # An application's files and logs go when it ends (a test run starts many).
                "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=300 "
                                     "-Dspark.worker.cleanup.appDataTtl=300"}

    def healthy(self) -> bool:
        return any(w.get("port") == self.port and w.get("state") == "ALIVE" for w in registered_workers())


class SparkWorker1(_SparkWorker):
    name = "spark-worker-1"
    port = ports.SPARK_WORKER_1
    web_port = ports.SPARK_WORKER_1_UI


class SparkWorker2(_SparkWorker):
    name = "spark-worker-2"
    port = ports.SPARK_WORKER_2
    web_port = ports.SPARK_WORKER_2_UI
