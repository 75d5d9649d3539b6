"""Airflow 3 for the local stack: api-server, scheduler and dag-processor, with the DAGs of
``orchestration/``, metadata in the stack's PostgreSQL (database ``airflow``), logs under
``.stack/airflow/``. Not part of the default ``make up`` (its first start migrates a database for
a minute): ``python -m stack up airflow`` (``make airflow``).

It runs from its own venv (``.stack/cache/airflow-venv``, installed from the pinned
``stack/conf/airflow/requirements.txt``): the Spark provider brings ``pyspark-client``, which would
overwrite the platform's pyspark in ``.venv``. Tasks run the replay with the platform's interpreter
(``KAPPA_ORCHESTRATION__PLATFORM_PYTHON``), so the two never share a site-packages.

The UI and REST API: http://127.0.0.1:18280, user ``admin``, password ``admin`` (local only; the
passwords file is ``.stack/airflow/passwords.json``).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import requests

from stack import ports, process
from stack.paths import REPO_ROOT, STACK_DIR, stack_home
from stack.postgres import Postgres
from stack.process import ServiceError
from stack.service import Service

REQUIREMENTS = STACK_DIR / "conf" / "airflow" / "requirements.txt"
DAGS = REPO_ROOT / "orchestration"
USER, PASSWORD = "admin", "admin"
DATABASE = ROLE = "airflow"
PROCESSES = ("api-server", "scheduler", "dag-processor")


def venv() -> Path:
    return stack_home() / "cache" / "airflow-venv"


def python() -> Path:
    """The Airflow venv's interpreter, installed first if missing or older than the lock file."""
    install()
    return venv() / "bin" / "python"


def install() -> None:
    """Create the venv and install the lock file into it, once per lock file version (~2 min)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    marker = venv() / f".installed-{digest}"
    if marker.exists():
        return
    venv().parent.mkdir(parents=True, exist_ok=True)
    steps = ([sys.executable, "-m", "venv", "--clear", str(venv())],
             [str(venv() / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "-r", str(REQUIREMENTS)])
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceError(f"airflow: `{' '.join(step)}` failed (PyPI must be reachable):\n"
                               f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
    marker.touch()


class Airflow(Service):
    name = "airflow"
    port = ports.AIRFLOW
    start_timeout = 240.0
    stop_grace = 30.0
    depends_on = ("postgres", "alertmanager")

    def _pid_file(self, role: str) -> Path:
        return self.home / f"{role}.pid"

    def _log(self, role: str) -> Path:
        return self.home / f"{role}.log"

    @property
    def pid_file(self) -> Path:
        return self._pid_file("api-server")

    @property
    def log_file(self) -> Path:
        return self._log("api-server")

    def provision(self) -> None:
        install()

    def environment(self) -> dict[str, str]:
        secret = json.loads((self.home / "secrets.json").read_text())
        url = f"http://127.0.0.1:{self.port}"
        platform_python = REPO_ROOT / ".venv" / "bin" / "python"
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
                f"postgresql+psycopg2://{ROLE}:{secret['database']}@127.0.0.1:{ports.POSTGRES}/{DATABASE}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__SECRET_KEY": secret["api"],
            "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            # The DAG files import `orchestration`, and nothing else of the checkout.
            "PYTHONPATH": str(self.home / "pythonpath"),
            # The DAGs' settings (orchestration/config.py) for this machine.
            "KAPPA_ORCHESTRATION__PLATFORM_PYTHON": str(platform_python if platform_python.exists() else sys.executable),
            "KAPPA_ORCHESTRATION__PLATFORM_HOME": str(REPO_ROOT),
            "KAPPA_ORCHESTRATION__ALERTMANAGER_URL": f"http://127.0.0.1:{ports.ALERTMANAGER}",
            # Locally a failing task retries once, 5 s later, so its alert shows within a minute.
            "KAPPA_ORCHESTRATION__RETRIES": os.environ.get("KAPPA_ORCHESTRATION__RETRIES", "1"),
            "KAPPA_ORCHESTRATION__RETRY_DELAY_S": os.environ.get("KAPPA_ORCHESTRATION__RETRY_DELAY_S", "5"),
        }

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        secrets_file = self.home / "secrets.json"
        if not secrets_file.exists():
            secrets_file.write_text(json.dumps({k: secrets.token_urlsafe(32) for k in ("database", "api", "jwt")}))
            secrets_file.chmod(0o600)
        (self.home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
        link = self.home / "pythonpath" / "orchestration"
        link.parent.mkdir(exist_ok=True)
        if not link.is_symlink() or link.resolve() != DAGS:
            link.unlink(missing_ok=True)
            link.symlink_to(DAGS)
        self._database(json.loads(secrets_file.read_text())["database"])
        marker = self.home / f".migrated-{hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]}"
        if not marker.exists():
            self._airflow("db", "migrate")
            marker.touch()

    def _database(self, password: str) -> None:
        postgres = Postgres()
        if not postgres.superuser_sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'"):
            postgres.superuser_sql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
        else:
            postgres.superuser_sql(f"ALTER ROLE {ROLE} PASSWORD '{password}'")
        if not postgres.superuser_sql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"):
            postgres.superuser_sql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")

    def _airflow(self, *args: str) -> str:
        result = subprocess.run([str(venv() / "bin" / "airflow"), *args], capture_output=True, text=True,
                                env={**os.environ, **self.environment()}, cwd=self.home)
        if result.returncode != 0:
            raise ServiceError(f"airflow: `airflow {' '.join(args)}` failed:\n{result.stdout[-2000:]}"
                               f"{result.stderr[-3000:]}")
        return result.stdout

    def commands(self) -> dict[str, list[str]]:
        airflow = str(venv() / "bin" / "airflow")
        return {"api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
                # The scheduler's log server would listen on every interface; the api-server reads
                # the task logs from .stack/airflow/logs itself.
                "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
                "dag-processor": [airflow, "dag-processor"]}

    def pid(self) -> int | None:
        """The api-server's pid when all three processes run."""
        pids = [process.read_pid(self._pid_file(role)) for role in PROCESSES]
        return pids[0] if all(pids) else None

    def start(self) -> None:
        api_running = process.read_pid(self._pid_file("api-server")) is not None
        if not api_running and process.port_open(self.port):
            raise ServiceError(f"airflow: port {self.port} is taken by a process the stack did not start "
                               f"(see `ss -ltnp | grep {self.port}`); stop it or set KAPPA_PORTS__AIRFLOW")
        env = self.environment()
        for role, argv in self.commands().items():
            if process.read_pid(self._pid_file(role)) is None:
                process.spawn(argv, pid_file=self._pid_file(role), log_file=self._log(role), env=env, cwd=self.home)

    def healthy(self) -> bool:
        """The api-server answers, and it sees the scheduler's and the dag-processor's heartbeats."""
        try:
            health = requests.get(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        return all(health.get(part, {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "dag_processor"))

    def stop(self) -> bool:
        stopped = [process.stop(self._pid_file(role), grace=self.stop_grace) for role in reversed(PROCESSES)]
        return any(stopped)
