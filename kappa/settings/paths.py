"""Where a process keeps local state: the development stack's servers (their data, logs and pid
files), the Prometheus file-discovery targets of the processes it scrapes, the logs of jobs a
rebuild starts. One folder: ``$KAPPA_STACK__HOME`` (a pod's /tmp), else ``.stack/`` in the checkout,
else (the package installed from its wheel, no checkout around it) ``~/.kappa``.
"""
from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    if "KAPPA_STACK__HOME" in os.environ:
        return Path(os.environ["KAPPA_STACK__HOME"]).resolve()
    if (CHECKOUT / "pyproject.toml").exists():
        return CHECKOUT / ".stack"
    return Path.home() / ".kappa"


def go_tool(name: str, version: str) -> Path:
    """Where a tool built with ``go install`` from the Go module proxy is kept (``stack/provision.py``
    builds it there; the k8s validator and the stack's Prometheus run it from there)."""
    return state_dir() / "cache" / "go" / f"{name}-{version}" / name


def local_spark() -> Path:
    """What ``make up`` resolved for a SparkSession on this machine (JSON: ``jars``, ``java_home``),
    used where the settings name no jars (``spark.jars``) and no ``JAVA_HOME`` is set."""
    return state_dir() / "spark-local.json"
