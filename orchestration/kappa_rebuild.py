"""``kappa_rebuild``: the Kappa rebuild of one pipeline, a task per step.

1. ``start``: a new serving version and its live job, from the earliest offset Kafka retains;
2. ``caught_up``: waits for that job's lag to reach ``max_lag``: a sensor in reschedule mode (it
   frees its worker slot between pokes) on ``kappa rebuild --step check``; with the kubernetes runner,
   a deferrable pod running ``--step wait``;
3. ``cut_over``: readers switch to the new version (refused unless the job caught up);
4. ``stop_old``: the previous version's job stops by itself; the task fails if it goes on writing.

The same steps as ``make rebuild JOB=...`` (``kappa rebuild``), one process each.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG, Param, task

from orchestration import commands, config, runners

CONFIG = config.load()

with DAG(
    dag_id="kappa_rebuild",
    description="Rebuild a pipeline's serving tables with a second live job, then cut readers over",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    tags=["kappa", "rebuild"],
    doc_md=__doc__,
    default_args=runners.retrying(CONFIG),
    params={
        "pipeline": Param(type="string", pattern=r"^[\w./-]+$", description="the pipeline to rebuild (e.g. orders)"),
        "max_lag": Param(0, type="integer", minimum=0, description="cut over once the new job is this close"),
        "launch": Param("none" if CONFIG.runner == "kubernetes" else "local", enum=["local", "none"],
                        description="local: start the new job on the worker; none: it is started elsewhere "
                                    "(its own SparkApplication) with kappa run <pipeline> --serving-version N"),
    },
) as dag:

    @task(multiple_outputs=True)
    def arguments(params=None) -> dict[str, list[str]]:
        return {step: commands.rebuild(step, params or {}) for step in commands.REBUILD_STEPS}

    steps = arguments()
    start = runners.replay("start", steps["start"], CONFIG)
    if CONFIG.runner == "kubernetes":
        caught_up = runners.replay("caught_up", steps["wait"], CONFIG, deferrable=True)
    else:
        caught_up = PythonSensor(task_id="caught_up", python_callable=runners.caught_up, mode="reschedule",
                                 op_args=[steps["check"], CONFIG.platform_python, CONFIG.platform_home],
                                 poke_interval=30, timeout=timedelta(hours=6).total_seconds())
    cut_over = runners.replay("cut_over", steps["cut-over"], CONFIG)
    stop_old = runners.replay("stop_old", steps["stop-old"], CONFIG)
    start >> caught_up >> cut_over >> stop_old
