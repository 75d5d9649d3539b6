"""``daily_reconcile``: each day, the previous day replayed in ``live`` mode.

The live job already wrote that day; the replay is the safety net (version guards make it a no-op
where the live job was right, and repair what a bug or an outage left). The data interval is the
calendar day [start, end) in UTC, from a cron data-interval timetable (``@daily`` would give
zero-length intervals in Airflow 3). Catchup is on and one run is active at a time, so a paused
or broken stretch is replayed day after day, in order, once it is unpaused or fixed.
"""
from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

from orchestration import alerts, commands, config, runners

CONFIG = config.load()

with DAG(
    dag_id="daily_reconcile",
    description="Replay yesterday in live mode with the live code (kappa backfill)",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime.fromisoformat(CONFIG.reconcile_start).replace(tzinfo=timezone.utc),
    catchup=True,
    max_active_runs=1,
    is_paused_upon_creation=True,  # unpause it once the platform runs: catchup starts at KAPPA_ORCHESTRATION__RECONCILE_START
    tags=["kappa", "replay"],
    doc_md=__doc__,
    default_args=runners.retrying(CONFIG),
    params={
        "pipeline": Param(None, type=["null", "string"], pattern=r"^[\w.,/-]+$",
                          description="pipelines, comma-separated; empty: every pipeline"),
        "source": Param("kafka", enum=list(commands.SOURCES), description="kafka, or lake (the raw archive)"),
    },
) as dag:

    @task
    def arguments(data_interval_start=None, data_interval_end=None, params=None) -> list[str]:
        params = params or {}
        return commands.reconcile(data_interval_start, data_interval_end, params.get("pipeline"), params.get("source"))

    runners.replay("replay", arguments(), CONFIG, on_success_callback=alerts.on_success)
