"""The DAGs' settings: environment variables of the Airflow processes, read when a DAG file is parsed
(the runner decides which operator a task is, so it cannot wait for a run).

Only the standard library here: the DAG files run wherever Airflow runs, without the platform's
packages. Every variable has a default that works with the local stack (``python -m stack up
airflow`` sets the platform's paths); README.md ("Orchestration") lists them.
"""
from __future__ import annotations

import dataclasses
import difflib
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
    runbook_url: str           # docs/runbook.md as the on-call opens it (the alert links its section)
    retries: int               # of a replay task, with exponential backoff from retry_delay_s
    retry_delay_s: float
    reconcile_start: str       # daily_reconcile's first day (ISO date); catchup runs every day since


PREFIX = "KAPPA_ORCHESTRATION__"  # + a field of Config, upper-case: the platform's one naming scheme
# The names these variables had before they joined that scheme: refused, naming the new one.
RENAMED = {"KAPPA_REPLAY_RUNNER": "RUNNER", "KAPPA_PLATFORM_HOME": "PLATFORM_HOME",
           "KAPPA_PLATFORM_PYTHON": "PLATFORM_PYTHON", "KAPPA_SPARK_CONN_ID": "SPARK_CONN_ID",
           "KAPPA_SPARK_APPLICATION": "SPARK_APPLICATION", "KAPPA_IMAGE": "IMAGE",
           "KAPPA_K8S_NAMESPACE": "K8S_NAMESPACE", "KAPPA_K8S_CONFIG_MAP": "K8S_CONFIG_MAP",
           "KAPPA_K8S_SECRET": "K8S_SECRET", "KAPPA_ALERTMANAGER_URL": "ALERTMANAGER_URL",
           "KAPPA_REPLAY_RETRIES": "RETRIES", "KAPPA_REPLAY_RETRY_DELAY_S": "RETRY_DELAY_S",
           "KAPPA_RECONCILE_START": "RECONCILE_START"}


def load(environ: Mapping[str, str] = os.environ) -> Config:
    """The settings from ``environ``; a wrong value or name fails the DAG's import, naming the variable."""
    fields = {f.name.upper() for f in dataclasses.fields(Config)}
    for variable in sorted(environ):
        if variable in RENAMED:
            raise ValueError(f"{variable} was renamed {PREFIX}{RENAMED[variable]}: set that instead")
        if variable.startswith(PREFIX) and variable[len(PREFIX):] not in fields:
            near = difflib.get_close_matches(variable, [PREFIX + f for f in sorted(fields)], n=1)
            raise ValueError(f"{variable} is not a setting of the DAGs" + (f"; did you mean {near[0]}?" if near else ""))

    def get(field: str, default: str) -> str:
        return environ.get(PREFIX + field.upper(), default)

    runner = get("runner", "local")
    if runner not in RUNNERS:
        raise ValueError(f"{PREFIX}RUNNER={runner!r}: choose one of {', '.join(RUNNERS)}")
    home = get("platform_home", str(REPO))
    return Config(
        runner=runner,
        platform_python=get("platform_python", str(Path(home) / ".venv" / "bin" / "python")),
        platform_home=home,
        spark_conn_id=get("spark_conn_id", "spark_default"),
        spark_application=get("spark_application", str(Path(home) / "kappa" / "__main__.py")),
        image=get("image", "kappa-platform:latest"),
        k8s_namespace=get("k8s_namespace", "kappa"),
        k8s_config_map=get("k8s_config_map", "kappa-settings"),
        k8s_secret=get("k8s_secret", "kappa-credentials"),
        alertmanager_url=get("alertmanager_url", "http://127.0.0.1:19193").rstrip("/"),
        runbook_url=get("runbook_url", (Path(home) / "docs" / "runbook.md").as_uri()),
        retries=_number(PREFIX + "RETRIES", get("retries", "3"), int),
        retry_delay_s=_number(PREFIX + "RETRY_DELAY_S", get("retry_delay_s", "300"), float),
        reconcile_start=get("reconcile_start", "2026-12-01"),
    )


def _number(name: str, value: str, kind):
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if number < 0:
        raise ValueError(f"{name}={value!r} must not be negative")
    return number
