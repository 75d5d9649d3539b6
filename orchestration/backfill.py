"""``backfill``: a manual replay of one range, with typed params (from, to, pipeline, mode, source).

Airflow checks the params' types when the run is triggered; the ``validate`` task then runs the
same replay with ``--dry-run``, which refuses a bad range (FROM not before TO, beyond Kafka's
retention, an unknown pipeline or topic, a shadow rebuild already running) before anything is written;
only then does ``replay`` run. Trigger it from the UI (Trigger DAG, the params form) or with
``airflow dags trigger backfill --conf '{"from": "2026-12-01", "to": "2026-12-02"}'``.
"""
from __future__ import annotations

from airflow.sdk import DAG, Param, task

from orchestration import alerts, commands, config, runners

CONFIG = config.load()
BOUND = r"^(earliest|latest|\d+:\d+(,\d+:\d+)*|\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?)$"

with DAG(
    dag_id="backfill",
    description="Replay a range of a pipeline's topic with the live code (kappa backfill)",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,  # manual only: nothing runs until someone triggers it
    max_active_runs=4,
    tags=["kappa", "replay"],
    doc_md=__doc__,
    default_args=runners.retrying(CONFIG),
    params={
        "from": Param(type="string", pattern=BOUND, title="from",
                      description="inclusive start: an ISO time (UTC unless it says), 'earliest', or offsets 0:120,1:98"),
        "to": Param("latest", type="string", pattern=BOUND, title="to",
                    description="exclusive end: an ISO time, 'latest', or offsets per partition"),
        "pipeline": Param(None, type=["null", "string"], pattern=r"^[\w.,/-]+$", title="pipeline",
                          description="pipelines, comma-separated (orders, customers) or a pipeline file; empty: every one"),
        "mode": Param("live", enum=list(commands.MODES), title="mode",
                      description="live: upserts into what readers see; shadow: a new version, then the cut-over"),
        "source": Param("kafka", enum=list(commands.SOURCES), title="source",
                        description="kafka, or lake: the raw archive, for ranges Kafka no longer retains"),
    },
) as dag:

    @task(multiple_outputs=True)
    def arguments(params=None) -> dict[str, list[str]]:
        replay = commands.backfill(params or {})
        return {"validate": commands.dry_run(replay), "replay": replay}

    planned = arguments()
    # A bad range stays bad: no retries; and no alert, the one who triggered the run sees why it failed.
    validate = runners.replay("validate", planned["validate"], CONFIG, retries=0, on_failure_callback=None)
    replay = runners.replay("replay", planned["replay"], CONFIG, on_success_callback=alerts.on_success)
    validate >> replay
