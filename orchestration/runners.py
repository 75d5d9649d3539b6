"""Where a task's ``kappa backfill|rebuild`` runs, chosen by one setting (``KAPPA_ORCHESTRATION__RUNNER``):

- ``local``: a subprocess of the Airflow worker, with the platform's interpreter and checkout
  (the local stack; any worker that has the platform installed);
- ``spark-submit``: ``SparkSubmitOperator`` submits kappa's entry file to the cluster of the
  Airflow connection ``KAPPA_ORCHESTRATION__SPARK_CONN_ID``, the same arguments as application arguments;
- ``kubernetes``: ``KubernetesPodOperator`` runs the platform's image with the same module and
  arguments, its settings from a ConfigMap and its credentials from a Secret.

Every runner takes the argument list as an XCom of the DAG's ``arguments`` task, so the command is
the same whichever runs it.
"""
from __future__ import annotations

import collections
import logging
import os
import subprocess
from typing import Any

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowException

from orchestration import commands
from orchestration.config import Config

log = logging.getLogger(__name__)


def replay(task_id: str, arguments: Any, config: Config, **operator_args: Any):
    """A task that runs ``python -m kappa <arguments>`` with the configured runner."""
    if config.runner == "spark-submit":
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

        return SparkSubmitOperator(task_id=task_id, conn_id=config.spark_conn_id, application=config.spark_application,
                                   application_args=arguments, name=f"kappa-{task_id}", **operator_args)
    if config.runner == "kubernetes":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from kubernetes.client import models as k8s

        return KubernetesPodOperator(
            task_id=task_id, name=f"kappa-{task_id}", namespace=config.k8s_namespace, image=config.image,
            cmds=["python", "-m", commands.MODULE], arguments=arguments, get_logs=True,
            on_finish_action="delete_succeeded_pod",
            env_from=[k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=config.k8s_config_map)),
                      k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=config.k8s_secret))],
            **operator_args)
    return task(task_id=task_id, **operator_args)(_run_local)(arguments, config.platform_python, config.platform_home)


def _run_local(arguments: list[str], python: str, home: str) -> None:
    """The replay as a subprocess; its output goes to the task's log, its refusal into the failure."""
    returncode, last = run(arguments, python, home)
    if returncode != 0:
        raise AirflowException(f"python -m {commands.MODULE} {' '.join(arguments)} exited with status {returncode}: "
                               f"{last or 'see the task log'}")


def caught_up(arguments: list[str], python: str, home: str) -> bool:
    """A sensor's poke: ``kappa rebuild --step check`` exits 0 once the shadow job caught up, 3 while not yet."""
    returncode, last = run(arguments, python, home)
    if returncode not in (0, commands.NOT_YET):
        raise AirflowException(f"the rebuild's check failed with status {returncode}: {last or 'see the task log'}")
    return returncode == 0


def run(arguments: list[str], python: str, home: str) -> tuple[int, str]:
    """(exit status, the last line that says why) of ``python -m kappa <arguments>`` in ``home``."""
    command = [python, "-m", commands.MODULE, *arguments]
    if not os.access(python, os.X_OK):
        raise AirflowException(f"{python} (KAPPA_ORCHESTRATION__PLATFORM_PYTHON) is not an interpreter with the platform installed: "
                               "run `make venv` in the checkout, or set KAPPA_ORCHESTRATION__PLATFORM_PYTHON")
    log.info("running %s in %s", " ".join(command), home)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the DAGs' path is not the platform's
    process = subprocess.Popen(command, cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    tail: collections.deque[str] = collections.deque(maxlen=50)
    assert process.stdout is not None
    for line in process.stdout:
        log.info("%s", line.rstrip())
        tail.append(line.rstrip())
    returncode = process.wait()
    said = [line for line in tail if line.startswith(f"{commands.MODULE} ")]  # "kappa backfill: refused: ..."
    return returncode, (said[-1] if said else next((line for line in reversed(tail) if line.strip()), ""))


def retrying(config: Config) -> dict[str, Any]:
    """The tasks' default_args: retries with exponential backoff, then the failure alert."""
    from datetime import timedelta

    from orchestration import alerts

    return {"retries": config.retries, "retry_delay": timedelta(seconds=config.retry_delay_s),
            "retry_exponential_backoff": True, "max_retry_delay": timedelta(hours=1),
            "on_failure_callback": alerts.on_failure}
