"""Run by tests/unit/orchestration/test_orchestration.py with the Airflow venv's interpreter (not the platform's):
loads the DAGs folder in a DagBag once per runner setting and prints, as JSON, what the test checks
against batch_replay's parser: import errors, the tasks and their wiring, and the argument lists
the DAGs' own ``arguments`` tasks make from sample params."""
import json
import os
import sys
from datetime import datetime, timezone

from airflow.dag_processing.dagbag import DagBag

FOLDER, SAMPLES = sys.argv[1], json.loads(sys.argv[2])


def source_of(value):
    """(task id, XCom key) when a templated field is another task's output."""
    operator = getattr(value, "operator", None)
    return [operator.task_id, getattr(value, "key", None)] if operator is not None else None


def describe(task):
    row = {"class": type(task).__name__, "upstream": sorted(task.upstream_task_ids), "retries": task.retries,
           "exponential": task.retry_exponential_backoff, "mode": getattr(task, "mode", None),
           "deferrable": getattr(task, "deferrable", None),
           "on_failure": [f"{c.__module__}.{c.__name__}" for c in (task.on_failure_callback or [])]
           if isinstance(task.on_failure_callback, list) else
           ([f"{task.on_failure_callback.__module__}.{task.on_failure_callback.__name__}"]
            if task.on_failure_callback else [])}
    for field in ("op_args", "application_args", "arguments", "cmds", "image", "application"):
        value = getattr(task, field, None)
        if value is None:
            continue
        if isinstance(value, (list, tuple)) and value and source_of(value[0]):
            row[field] = [source_of(value[0]), *[v for v in value[1:]]]
        else:
            row[field] = source_of(value) or (list(value) if isinstance(value, (list, tuple)) else str(value))
    return row


out = {}
for runner in ("local", "spark-submit", "kubernetes"):
    os.environ["KAPPA_ORCHESTRATION__RUNNER"] = runner
    bag = DagBag(dag_folder=FOLDER)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dag.check_cycle()
        dags[dag_id] = {"tasks": {t.task_id: describe(t) for t in dag.tasks}, "catchup": dag.catchup,
                        "max_active_runs": dag.max_active_runs, "timetable": type(dag.timetable).__name__,
                        "schedule": getattr(dag.timetable, "expression", None),
                        "params": {k: dag.params.get_param(k).schema for k in dag.params}}
    made = {}
    backfill = bag.dags.get("backfill")
    if backfill:
        made["backfill"] = [backfill.get_task("arguments").python_callable(params=p) for p in SAMPLES["backfill"]]
    rebuild = bag.dags.get("kappa_rebuild")
    if rebuild:
        made["kappa_rebuild"] = [rebuild.get_task("arguments").python_callable(params=p) for p in SAMPLES["rebuild"]]
    daily = bag.dags.get("daily_reconcile")
    if daily:
        made["daily_reconcile"] = [daily.get_task("arguments").python_callable(
            data_interval_start=datetime.fromisoformat(a).replace(tzinfo=timezone.utc),
            data_interval_end=datetime.fromisoformat(b).replace(tzinfo=timezone.utc), params=p)
            for a, b, p in SAMPLES["daily"]]
    out[runner] = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags, "made": made}
print("RESULT " + json.dumps(out, default=str))
