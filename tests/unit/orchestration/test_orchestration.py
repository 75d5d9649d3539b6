"""The DAGs of orchestration/: every one imports in a DagBag of the stack's Airflow (its own venv)
without errors or cycles, under each runner setting; and every task runs the replay entry point
with the arguments its params give, parsed here by batch_replay's own parser."""
from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from batch_replay import cli as replay_cli
from kappa import cli as kappa_cli
from orchestration import commands, config
from stack import airflow
from stack.paths import REPO_ROOT, stack_home

BACKFILL = [{"from": "2026-12-01", "to": "2026-12-02T06:00:00Z", "pipeline": "orders", "mode": "shadow", "source": "lake"},
            {"from": "earliest", "to": "latest", "pipeline": None, "mode": "live", "source": "kafka"},
            {"from": "0:120,1:98", "to": "0:200,1:150", "pipeline": "orders,customers", "mode": "live", "source": "kafka"}]
REBUILD = [{"pipeline": "orders", "max_lag": 5, "launch": "local"}, {"pipeline": "customers", "max_lag": 0, "launch": "none"}]
DAILY = [["2026-12-01T00:00:00", "2026-12-02T00:00:00", {"pipeline": None, "source": "kafka"}],
         ["2026-12-02T00:00:00", "2026-12-03T00:00:00", {"pipeline": "orders", "source": "lake"}]]


@lru_cache(maxsize=1)
def loaded() -> dict:
    """The DagBag's view of orchestration/, per runner (the Airflow venv is installed on first use)."""
    samples = json.dumps({"backfill": BACKFILL, "rebuild": REBUILD, "daily": DAILY})
    link = stack_home() / "unit-airflow" / "pythonpath"
    link.mkdir(parents=True, exist_ok=True)
    if not (link / "orchestration").exists():
        (link / "orchestration").symlink_to(REPO_ROOT / "orchestration")
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(link.parent), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": str(link), "KAPPA_ORCHESTRATION__PLATFORM_HOME": str(REPO_ROOT)}
    result = subprocess.run([str(airflow.python()), str(REPO_ROOT / "tests" / "unit" / "orchestration" / "airflow_dags.py"),
                             str(REPO_ROOT / "orchestration"), samples], capture_output=True, text=True, env=env,
                            timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("runner", config.RUNNERS)
def test_every_dag_imports_without_errors_or_cycles(runner):
    bag = loaded()[runner]
    assert bag["errors"] == {}
    assert set(bag["dags"]) == {"backfill", "daily_reconcile", "kappa_rebuild"}


def test_the_choices_are_batch_replays_own():
    commands_of = kappa_cli.parser()._subparsers._group_actions[0].choices
    parser_choices = {a.dest: a.choices for name in ("backfill", "rebuild") for a in commands_of[name]._actions
                      if a.choices}
    assert tuple(parser_choices["mode"]) == commands.MODES
    assert tuple(parser_choices["source"]) == commands.SOURCES
    assert tuple(s for s in parser_choices["step"] if s != "all") == commands.REBUILD_STEPS
    assert commands.NOT_YET == replay_cli.NOT_YET
    params = loaded()["local"]["dags"]["backfill"]["params"]
    assert params["mode"]["enum"] == list(commands.MODES) and params["source"]["enum"] == list(commands.SOURCES)


def test_backfill_validates_then_replays_what_its_params_say():
    made = loaded()["local"]["made"]["backfill"]
    for params, arguments in zip(BACKFILL, made):
        validate, replay = kappa_cli.parser().parse_args(arguments["validate"]), kappa_cli.parser().parse_args(arguments["replay"])
        assert validate.dry_run and not replay.dry_run
        for parsed in (validate, replay):
            assert (parsed.start, parsed.end, parsed.mode, parsed.source, parsed.pipelines) == \
                (params["from"], params["to"], params["mode"], params["source"], params["pipeline"])
        assert arguments["validate"] == commands.dry_run(arguments["replay"])
    tasks = loaded()["local"]["dags"]["backfill"]["tasks"]
    assert tasks["validate"]["op_args"][0] == ["arguments", "validate"] and tasks["validate"]["retries"] == 0
    assert tasks["validate"]["on_failure"] == []
    assert tasks["replay"]["op_args"][0] == ["arguments", "replay"] and "validate" in tasks["replay"]["upstream"]
    assert tasks["replay"]["on_failure"] == ["orchestration.alerts.on_failure"] and tasks["replay"]["exponential"]


def test_daily_reconcile_replays_its_data_interval_live():
    dag = loaded()["local"]["dags"]["daily_reconcile"]
    assert (dag["timetable"], dag["schedule"], dag["catchup"], dag["max_active_runs"]) == \
        ("CronDataIntervalTimetable", "0 0 * * *", True, 1)
    for (start, end, params), arguments in zip(DAILY, loaded()["local"]["made"]["daily_reconcile"]):
        parsed = kappa_cli.parser().parse_args(arguments)
        assert parsed.start.startswith(start) and parsed.end.startswith(end) and parsed.end.endswith("+00:00")
        assert (parsed.mode, parsed.source, parsed.pipelines, parsed.dry_run) == ("live", params["source"], params["pipeline"], False)
    replay = dag["tasks"]["replay"]
    assert replay["op_args"][0] == ["arguments", "return_value"] and replay["retries"] == 3 and replay["exponential"]


def test_kappa_rebuild_runs_each_step_of_the_rebuild():
    for params, steps in zip(REBUILD, loaded()["local"]["made"]["kappa_rebuild"]):
        for step, arguments in steps.items():
            parsed = kappa_cli.parser().parse_args(arguments)
            assert (parsed.command == "rebuild", parsed.step, parsed.pipelines, parsed.max_lag) == \
                (True, step, params["pipeline"], params["max_lag"])
            if step == "start":
                assert parsed.launch == params["launch"]
    local = loaded()["local"]["dags"]["kappa_rebuild"]["tasks"]
    assert local["caught_up"]["class"] == "PythonSensor" and local["caught_up"]["mode"] == "reschedule"
    assert local["caught_up"]["op_args"][0] == ["arguments", "check"]
    order = [("start", "arguments"), ("caught_up", "start"), ("cut_over", "caught_up"), ("stop_old", "cut_over")]
    assert all(before in local[task]["upstream"] for task, before in order)
    pods = loaded()["kubernetes"]["dags"]["kappa_rebuild"]["tasks"]
    assert pods["caught_up"]["class"] == "KubernetesPodOperator" and pods["caught_up"]["deferrable"]
    assert pods["caught_up"]["arguments"] == ["arguments", "wait"]


@pytest.mark.parametrize("runner, field", [("spark-submit", "application_args"), ("kubernetes", "arguments")])
def test_the_production_runners_take_the_same_arguments(runner, field):
    dags = loaded()[runner]["dags"]
    kind = {"spark-submit": "SparkSubmitOperator", "kubernetes": "KubernetesPodOperator"}[runner]
    for dag_id, task_id, key in (("backfill", "validate", "validate"), ("backfill", "replay", "replay"),
                                 ("daily_reconcile", "replay", "return_value"), ("kappa_rebuild", "start", "start")):
        task = dags[dag_id]["tasks"][task_id]
        assert task["class"] == kind and task[field] == ["arguments", key], (dag_id, task_id, task)
    if runner == "kubernetes":
        replay = dags["backfill"]["tasks"]["replay"]
        assert replay["cmds"] == ["python", "-m", commands.MODULE] and replay["image"] == config.load({}).image
    else:
        assert dags["backfill"]["tasks"]["replay"]["application"].endswith("kappa/__main__.py")


def test_the_airflow_venv_leaves_the_platforms_pyspark_alone():
    """The Spark provider's pyspark-client lives in Airflow's venv only; the platform keeps pyspark 4.2.0."""
    import pyspark

    assert pyspark.__version__ == "4.2.0" and (REPO_ROOT / ".venv").resolve() in Path(pyspark.__file__).resolve().parents
    assert Path(pyspark.__file__).resolve().parent.joinpath("jars").is_dir()
    other = subprocess.run([str(airflow.python()), "-c", "import pyspark, sys; print(pyspark.__file__)"],
                           capture_output=True, text=True, timeout=120)
    assert str(airflow.venv()) in other.stdout, other.stderr


def test_a_wrong_runner_names_the_setting():
    with pytest.raises(ValueError, match="KAPPA_ORCHESTRATION__RUNNER='spark'"):
        config.load({"KAPPA_ORCHESTRATION__RUNNER": "spark"})


def test_the_dags_variables_are_checked_by_name():
    assert config.load({"KAPPA_ORCHESTRATION__RETRIES": "5"}).retries == 5
    with pytest.raises(ValueError, match="KAPPA_REPLAY_RETRIES was renamed KAPPA_ORCHESTRATION__RETRIES"):
        config.load({"KAPPA_REPLAY_RETRIES": "5"})
    with pytest.raises(ValueError, match="KAPPA_ORCHESTRATION__RETRY is not a setting of the DAGs; did you mean "
                                         "KAPPA_ORCHESTRATION__RETRIES"):
        config.load({"KAPPA_ORCHESTRATION__RETRY": "5"})
