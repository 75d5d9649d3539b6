"""A pipeline as a real process (``kappa run <pipeline>.toml``), as a supervisor runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from streaming import pipelines
from tests.conftest import write_toml

REPO = Path(__file__).resolve().parents[2]


def pipeline_file(settings: dict, tmp_path: Path, name: str, pipeline: str = "orders") -> Path:
    """One of the platform's pipeline files with ``settings`` (name, topic, namespace, ...) replaced."""
    source = pipelines.path(pipeline)
    values = tomllib.loads(source.read_text())
    for relative in ("sql", "migrations"):  # relative to the file they were in
        if relative in values:
            values[relative] = str(source.parent / values[relative])
    path = tmp_path / f"{name}.toml"
    write_toml(path, {**values, **settings})
    return path


def start(config: dict, tmp_path: Path, log_name: str, pipeline: str = "orders", available_now: bool = False,
          spark_conf: dict | None = None, env: dict | None = None) -> subprocess.Popen:
    """One of the platform's pipelines, with ``config`` replacing its settings, as a process."""
    return run_file(pipeline_file(config, tmp_path, log_name, pipeline), tmp_path, log_name, available_now, spark_conf,
                    env)


def run_file(path: Path, tmp_path: Path, log_name: str, available_now: bool = False,
             spark_conf: dict | None = None, env: dict | None = None) -> subprocess.Popen:
    """``kappa run <path>``, its output in ``<tmp_path>/<log_name>.log``; ``env``: settings variables to add."""
    env = {**os.environ, **(env or {})}
    if spark_conf:
        env["KAPPA_SPARK__CONF"] = json.dumps(spark_conf)
    log = open(tmp_path / f"{log_name}.log", "wb")
    command = [sys.executable, "-m", "kappa", "run", str(path)]
    proc = subprocess.Popen(command + (["--available-now"] if available_now else []), cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = tmp_path / f"{log_name}.log"
    return proc


def log_lines(proc: subprocess.Popen) -> list[str]:
    return proc.log_path.read_text(errors="replace").splitlines()


def messages(proc: subprocess.Popen) -> list[str]:
    """The ``message`` of every JSON log line the job wrote."""
    out = []
    for line in log_lines(proc):
        try:
            out.append(json.loads(line)["message"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def not_json(text: str) -> list[str]:
    """The lines of a job's output that are not one JSON object each: every line a job writes,
    Spark's and the JVM's included, is one (kappa/logs.py, streaming/log4j2.properties)."""
    bad = []
    for line in text.splitlines():
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    return bad
