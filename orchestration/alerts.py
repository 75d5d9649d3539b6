"""A replay task that failed for good (its retries spent) raises an alert in the platform's
Alertmanager, beside the Prometheus alerts (docs/runbook.md#kappareplayrunfailed): the same routing,
receivers and silences. The next success of the same task resolves it.

Callbacks run in the Airflow worker; they must never fail the task themselves, so a missing
Alertmanager is logged, not raised.
"""
from __future__ import annotations

import json
import logging
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

from orchestration import config

log = logging.getLogger(__name__)
ALERT = "KappaReplayRunFailed"
ACTIVE_FOR = timedelta(days=1)  # a failed run's alert stays this long unless a success resolves it first


def on_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback``: the alert, with the error and the task's log."""
    ti = context["ti"]
    now = datetime.now(timezone.utc)
    error = context.get("exception")
    _post(context, {
        "startsAt": now.isoformat(), "endsAt": (now + ACTIVE_FOR).isoformat(),
        "annotations": {
            "summary": f"{ti.dag_id}.{ti.task_id} failed after {ti.try_number} tries: "
                       f"{str(error).strip()[:500] if error else 'see the task log'}",
            "run_id": str(ti.run_id), "log_url": str(getattr(ti, "log_url", "") or ""),
            "runbook_url": f"{config.load().runbook_url}#kappareplayrunfailed"},
        "generatorURL": str(getattr(ti, "log_url", "") or "")})


def on_success(context: dict[str, Any]) -> None:
    """``on_success_callback``: resolve the alert an earlier failure of the same task raised."""
    now = datetime.now(timezone.utc).isoformat()
    _post(context, {"startsAt": now, "endsAt": now})


def labels(context: dict[str, Any]) -> dict[str, str]:
    """What identifies the alert: one per DAG, task and pipeline, whatever the run."""
    ti, params = context["ti"], context.get("params") or {}
    return {"alertname": ALERT, "severity": "warning", "dag_id": ti.dag_id, "task_id": ti.task_id,
            "pipeline": str(params.get("pipeline") or "all")}


def _post(context: dict[str, Any], alert: dict[str, Any]) -> None:
    url = f"{config.load().alertmanager_url}/api/v2/alerts"
    body = json.dumps([{"labels": labels(context), **alert}]).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except OSError as exc:
        log.error("the alert %s could not reach the Alertmanager at %s (KAPPA_ORCHESTRATION__ALERTMANAGER_URL): %s", ALERT, url, exc)
