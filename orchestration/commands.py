"""The replay commands' arguments (``kappa backfill ...``, ``kappa rebuild ...``) for each DAG's tasks.

The DAGs hold no data logic: each task is this module's argument list given to one entry point.
Standard library only (it runs in the Airflow workers); ``tests/unit/orchestration/test_orchestration.py``
parses every list with ``kappa``'s own parser, so the two cannot drift.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

MODULE = "kappa"                                     # python -m kappa <command>, in every runner
MODES = ("live", "shadow")                           # kappa backfill --mode
SOURCES = ("kafka", "lake")                          # kappa backfill --source
REBUILD_STEPS = ("start", "check", "wait", "cut-over", "stop-old")  # kappa rebuild --step
NOT_YET = 3                                          # kappa rebuild --step check: not caught up yet


def backfill(params: Mapping[str, object]) -> list[str]:
    """The backfill DAG's replay, from its run's params (from, to, pipeline, mode, source)."""
    start = str(params.get("from") or "").strip()
    if not start:
        raise ValueError("the param 'from' is required: where the replay starts (an ISO time, 'earliest' or "
                         "offsets such as 0:120,1:98)")
    mode, source = params.get("mode") or "live", params.get("source") or "kafka"
    if mode not in MODES or source not in SOURCES:
        raise ValueError(f"mode {mode!r} / source {source!r}: mode is one of {MODES}, source one of {SOURCES}")
    arguments = ["backfill", "--from", start, "--to", str(params.get("to") or "latest").strip(), "--mode", str(mode),
                 "--source", str(source)]
    return arguments + _pipeline(params.get("pipeline"))


def reconcile(start: datetime, end: datetime, pipeline: object = None, source: object = None) -> list[str]:
    """daily_reconcile's replay of one data interval [start, end), live mode."""
    return ["backfill", "--from", start.isoformat(), "--to", end.isoformat(), "--mode", "live",
            "--source", str(source or "kafka")] + _pipeline(pipeline)


def rebuild(step: str, params: Mapping[str, object]) -> list[str]:
    """One step of the Kappa rebuild of the pipeline ``params['pipeline']``."""
    if step not in REBUILD_STEPS:
        raise ValueError(f"unknown rebuild step {step!r}; steps: {REBUILD_STEPS}")
    pipeline = _pipeline(params.get("pipeline"))
    if not pipeline:
        raise ValueError("the param 'pipeline' is required: the pipeline to rebuild (e.g. orders)")
    arguments = ["rebuild", "--step", step, *pipeline, "--max-lag", str(int(params.get("max_lag") or 0))]
    if step == "start":
        arguments += ["--launch", str(params.get("launch") or "local")]
    return arguments


def dry_run(arguments: list[str]) -> list[str]:
    """The same replay, planned and checked, writing nothing: the validation before the replay."""
    return [*arguments, "--dry-run"]


def _pipeline(pipeline: object) -> list[str]:
    text = str(pipeline or "").strip()
    return ["--pipeline", text] if text else []
