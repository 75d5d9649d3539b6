"""The DAGs' settings: environment variables of the Airflow processes, read when a DAG file is parsed
(the runner decides which operator a task is, so it cannot wait for a run).

Only the standard library here: the DAG files run wherever Airflow runs, without the platform's
packages. Every variable has a default that works with the local stack (``python -m stack up
airflow`` sets the platform's paths); README.md ("Orchestration") lists them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

RUNNERS = ("local", "spark-submit", "kubernetes")
REPO = Path(__file__).resolve().parent.parent  # a checkout's root, when the DAGs folder is the checkout's


@dataclass(frozen=True)
class Config:
    runner: str                # local: a subprocess on the worker; spark-submit; kubernetes: a pod per task
    platform_python: str       # local: the interpreter that has the platform installed
    platform_home: str         # local: the working directory of the replay (the checkout)
    spark_conn_id: str         # spark-submit: the Airflow connection of the cluster (master, spark-binary)
    spark_application: str     # spark-submit: kappa's entry file where spark-submit runs
    image: str                 # kubernetes: the platform's image (k8s/); the same entry point
    k8s_namespace: str
    k8s_config_map: str        # kubernetes: the platform's settings (KAPPA_* variables)
    k8s_secret: str            # kubernetes: its credentials
    alertmanager_url: str      # where a failed task's alert goes
    retries: int               # of a replay task, with exponential backoff from retry_delay_s
    retry_delay_s: float
    reconcile_start: str       # daily_reconcile's first day (ISO date); catchup runs every day since


def load(environ: Mapping[str, str] = os.environ) -> Config:
    """The settings from ``environ``; a wrong value fails the DAG's import, naming the variable."""
    runner = environ.get("KAPPA_REPLAY_RUNNER", "local")
    if runner not in RUNNERS:
        raise ValueError(f"KAPPA_REPLAY_RUNNER={runner!r}: choose one of {', '.join(RUNNERS)}")
    home = environ.get("KAPPA_PLATFORM_HOME", str(REPO))
    return Config(
        runner=runner,
        platform_python=environ.get("KAPPA_PLATFORM_PYTHON", str(Path(home) / ".venv" / "bin" / "python")),
        platform_home=home,
        spark_conn_id=environ.get("KAPPA_SPARK_CONN_ID", "spark_default"),
        spark_application=environ.get("KAPPA_SPARK_APPLICATION", str(Path(home) / "kappa" / "__main__.py")),
        image=environ.get("KAPPA_IMAGE", "kappa-platform:latest"),
        k8s_namespace=environ.get("KAPPA_K8S_NAMESPACE", "kappa"),
        k8s_config_map=environ.get("KAPPA_K8S_CONFIG_MAP", "kappa-settings"),
        k8s_secret=environ.get("KAPPA_K8S_SECRET", "kappa-credentials"),
        alertmanager_url=environ.get("KAPPA_ALERTMANAGER_URL", "http://127.0.0.1:19193").rstrip("/"),
        retries=_number(environ, "KAPPA_REPLAY_RETRIES", "3", int),
        retry_delay_s=_number(environ, "KAPPA_REPLAY_RETRY_DELAY_S", "300", float),
        reconcile_start=environ.get("KAPPA_RECONCILE_START", "2026-12-01"),
    )


def _number(environ: Mapping[str, str], name: str, default: str, kind):
    value = environ.get(name, default)
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if number < 0:
        raise ValueError(f"{name}={value!r} must not be negative")
    return number
