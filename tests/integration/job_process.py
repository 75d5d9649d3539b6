"""A streaming job as a real process (``python -m streaming.jobs.<job> --config ...``), as a supervisor runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_toml

REPO = Path(__file__).resolve().parents[2]


def start(config: dict, tmp_path: Path, log_name: str, job: str = "orders", available_now: bool = False,
          spark_conf: dict | None = None) -> subprocess.Popen:
    path = tmp_path / f"{log_name}.toml"
    write_toml(path, config)
    env = dict(os.environ)
    if spark_conf:
        env["KAPPA_SPARK__CONF"] = json.dumps(spark_conf)
    log = open(tmp_path / f"{log_name}.log", "wb")
    command = [sys.executable, "-m", f"streaming.jobs.{job}", "--config", str(path)]
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
