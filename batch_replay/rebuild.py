"""The Kappa rebuild as one command: a second live job of the pipeline writes a new serving version
from the earliest offset Kafka retains, with its own checkpoint; once it has caught up with the
topic, readers are cut over to it, and the old job stops by itself (its version became a previous
one, which it checks every few seconds).

    kappa rebuild --pipeline orders [--launch local|none] [--max-lag 0]
    kappa rebuild --pipeline orders --step start|check|wait|cut-over|stop-old

``--launch local`` starts the shadow job on this machine as a detached process (``kappa run
<file> --serving-version N``, its log under ``.stack/logs/jobs/``); it goes on as the
live job after the cut-over. ``--launch none`` waits for a shadow job started elsewhere with the
same arguments (on Kubernetes, its own SparkApplication). The job's position is read from its
checkpoint (:mod:`streaming.checkpoints`), its lag against the topic's end offsets. The rebuild
holds the pipeline's lock from the new version to the cut-over; a rebuild that stopped half-way
(timed out, interrupted, the shadow job failed) is finished by running it again: the same shadow
version, the same job and checkpoint.
"""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from kappa.settings import Settings
from kappa.settings.paths import state_dir
from streaming import checkpoints, locks
from streaming.jobs import pipeline as pipelines
from streaming import versions
from kappa.errors import KappaError

LAUNCHES = ("local", "none")
STOP_WAIT_S = 60.0  # how long the rebuild waits for the old job to stop after the cut-over


class RebuildFailed(KappaError, RuntimeError):
    """The rebuild stopped before its cut-over; the message says what stands and what to do."""


def rebuild(settings: Settings, path: Path, *, launch: str = "local", max_lag: int = 0, timeout_s: float = 3600,
            poll_s: float = 2.0, echo: Callable[[str], None] = print, number: int | None = None) -> int:
    """Rebuild the pipeline in ``path`` into a new serving version (``number``, if given) and cut readers
    over to it; its number.

    The four steps below in one process, holding the pipeline's lock throughout."""
    pipeline = pipelines.load(path)
    with versions.hold(settings, pipeline.namespace, pipeline.name, "kappa rebuild"):
        old_job = pipeline.as_version(settings)  # the live job readers' data comes from today
        number, process = _start_shadow(settings, path, pipeline, launch, echo, number)
        _wait_caught_up(settings, pipeline.as_version(settings, number), process, max_lag, timeout_s, poll_s, echo)
        _cut_over(settings, pipeline, number, echo)
    _wait_stopped(settings, old_job, echo)
    return number


# The same rebuild as separate steps, for a scheduler that runs each as its own task (the Airflow DAG
# kappa_rebuild: start, a sensor on check, cut-over, stop-old). Each step takes the pipeline's lock for
# its own length; between them the shadow version is found again from the versions record.

def start(settings: Settings, path: Path, *, launch: str = "local", echo: Callable[[str], None] = print,
          number: int | None = None) -> int:
    """Step 1: the shadow version (``number``; else the unfinished one again, else a new one) and its job,
    started; its number. A manifest that names the version (k8s/rebuild: the shadow SparkApplication's
    ``--serving-version N``) passes ``number``, so the job and the record agree whichever runs first."""
    pipeline = pipelines.load(path)
    with versions.hold(settings, pipeline.namespace, pipeline.name, "kappa rebuild"):
        number, _ = _start_shadow(settings, path, pipeline, launch, echo, number)
    return number


def caught_up(settings: Settings, path: Path, *, max_lag: int = 0, echo: Callable[[str], None] = print) -> bool:
    """Step 2, once (a sensor's poke): whether the shadow job runs and is at most ``max_lag`` events behind."""
    pipeline = pipelines.load(path)
    job = pipeline.as_version(settings, _pending(settings, pipeline).number)
    behind, done, total = lag(settings, job)
    runs = locks.holder(settings, locks.JOB, job.checkpoint) is not None
    echo(f"the job {job.name} {'runs' if runs else 'does not run'}: {done:,} of {total:,} events done, "
         f"{behind:,} behind (cut over at {max_lag:,} or fewer)")
    return behind <= max_lag and runs and bool(checkpoints.committed(settings, job.checkpoint))


def wait(settings: Settings, path: Path, *, max_lag: int = 0, timeout_s: float = 3600, poll_s: float = 2.0,
         echo: Callable[[str], None] = print) -> None:
    """Step 2 in one call: block until :func:`caught_up` (a pod's way to wait, where no sensor pokes)."""
    pipeline = pipelines.load(path)
    _wait_caught_up(settings, pipeline.as_version(settings, _pending(settings, pipeline).number), None, max_lag,
                    timeout_s, poll_s, echo)


def cut_over(settings: Settings, path: Path, *, max_lag: int = 0, echo: Callable[[str], None] = print) -> int:
    """Step 3: readers switch to the shadow version, refused unless its job has caught up; its number."""
    pipeline = pipelines.load(path)
    with versions.hold(settings, pipeline.namespace, pipeline.name, "kappa rebuild"):
        number = _pending(settings, pipeline).number
        if not caught_up(settings, path, max_lag=max_lag, echo=echo):
            raise RebuildFailed(f"version {number} of {pipeline.name} is not cut over: its job has not caught up "
                                "(step check); readers still see the active version")
        _cut_over(settings, pipeline, number, echo)
    return number


def stop_old(settings: Settings, path: Path, *, echo: Callable[[str], None] = print) -> None:
    """Step 4: wait for the job of the version readers left to stop by itself; fail if it goes on writing."""
    pipeline = pipelines.load(path)
    previous = [v for v in versions.listing(settings, pipeline.namespace, pipeline.name) if v.state == "previous"]
    if not previous:
        raise RebuildFailed(f"{pipeline.name} has no previous version: nothing was cut over (step cut-over)")
    if not _wait_stopped(settings, _job_of(pipeline, max(v.number for v in previous)), echo):
        raise RebuildFailed(f"the previous version's job of {pipeline.name} still runs: stop it")


def _pending(settings: Settings, pipeline) -> versions.Version:
    shadows = [v for v in versions.listing(settings, pipeline.namespace, pipeline.name) if v.state == "shadow"]
    if not shadows:
        raise RebuildFailed(f"{pipeline.name} in {pipeline.namespace} has no shadow version: start the rebuild "
                            "first (kappa rebuild --step start)")
    return max(shadows, key=lambda v: v.number)


def _job_of(pipeline, number: int):
    """The job of version ``number``, whatever its state (only its name and checkpoint are used)."""
    return pipeline if number == 1 else pipeline.model_copy(update={"name": versions.job_name(pipeline.name, number)})


def _start_shadow(settings: Settings, path: Path, pipeline, launch: str, echo,
                  number: int | None = None) -> tuple[int, subprocess.Popen | None]:
    version = versions.shadow(settings, pipeline.namespace, pipeline.name, number)
    job = pipeline.as_version(settings, version.number)
    echo(f"kappa rebuild of {pipeline.name}: version {version.number} in {version.home}, written by the job {job.name} "
         f"(checkpoint {job.checkpoint}) from the earliest retained offset of {pipeline.topic}")
    return version.number, _start(settings, path, job, version.number, launch, echo)


def _cut_over(settings: Settings, pipeline, number: int, echo) -> None:
    switched = versions.cut_over(settings, pipeline.namespace, pipeline.name, number)
    echo(f"cut over: readers of {pipeline.namespace} see version {number} of {pipeline.name}:")
    echo("\n".join(f"  {line}" for line in switched))


def command(path: Path, number: int) -> list[str]:
    """The shadow job's command line (the same on any machine or pod with the platform installed)."""
    return [sys.executable, "-m", "kappa", "run", str(path), "--serving-version", str(number)]


def _start(settings: Settings, path: Path, job, number: int, launch: str, echo) -> subprocess.Popen | None:
    running = locks.holder(settings, locks.JOB, job.checkpoint)
    if running:
        echo(f"the job {job.name} runs already ({running}): waiting for it to catch up")
        return None
    if launch == "none":
        echo(f"start the shadow job where the pipelines run, e.g. as its own SparkApplication: "
             f"kappa run {path} --serving-version {number}")
        return None
    logs = state_dir() / "logs" / "jobs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{job.name}.log"
    with log.open("ab") as out:  # detached: the job outlives the rebuild, as the live job
        process = subprocess.Popen(command(path.resolve(), number), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    echo(f"started the job {job.name}: pid {process.pid}, log {log}; it goes on as the live job after the cut-over "
         f"(stop it with kill -TERM {process.pid})")
    return process


def _ends(settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic``: (earliest retained offset, end offset)."""
    consumer = Consumer(settings.kafka.client(**{"group.id": "kappa-rebuild", "enable.auto.commit": False}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise RebuildFailed(f"topic {topic} does not exist in Kafka: check the pipeline file's 'topic'")
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in sorted(meta.partitions)}
    finally:
        consumer.close()


def lag(settings: Settings, job) -> tuple[int, int, int]:
    """(events behind the topic's end, events done, events in the topic) of ``job``, from its checkpoint."""
    ends = _ends(settings, job.topic)
    position = checkpoints.committed(settings, job.checkpoint).get(job.topic, {})
    behind = sum(max(0, high - max(low, position.get(p, low))) for p, (low, high) in ends.items())
    total = sum(high - low for low, high in ends.values())
    return behind, total - behind, total


def _wait_caught_up(settings: Settings, job, process, max_lag: int, timeout_s: float, poll_s: float, echo) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("lag {task.fields[lag]:,}"), TimeElapsedColumn())
    with Progress(*columns) as bar:
        task = bar.add_task(f"{job.name} catching up", total=None, lag=0)
        while True:
            behind, done, total = lag(settings, job)
            bar.update(task, completed=done, total=total, lag=behind)
            runs = locks.holder(settings, locks.JOB, job.checkpoint) is not None
            if behind <= max_lag and runs and checkpoints.committed(settings, job.checkpoint):
                return
            if process is not None and process.poll() is not None:
                raise RebuildFailed(f"the job {job.name} exited with status {process.returncode} before it caught up "
                                    f"({behind:,} events behind); see its log under {state_dir() / 'logs' / 'jobs'}."
                                    " Readers still see the active version; run the rebuild again to go on from the "
                                    "job's checkpoint")
            if time.monotonic() > deadline:
                raise RebuildFailed(f"the job {job.name} is {behind:,} events behind after {timeout_s:.0f} s "
                                    "(--timeout); it goes on if it runs. Readers still see the active version; run the "
                                    "rebuild again to wait for it")
            time.sleep(poll_s)


def _wait_stopped(settings: Settings, old_job, echo) -> bool:
    """Whether ``old_job`` is stopped (it stops by itself within seconds of a cut-over)."""
    deadline = time.monotonic() + STOP_WAIT_S
    holder = locks.holder(settings, locks.JOB, old_job.checkpoint)
    if holder is None:
        echo(f"no job {old_job.name} (the previous version's) was running")
        return True
    while holder is not None and time.monotonic() < deadline:
        time.sleep(1)
        holder = locks.holder(settings, locks.JOB, old_job.checkpoint)
    if holder is None:
        echo(f"the job {old_job.name} of the previous version stopped")
        return True
    echo(f"the job {old_job.name} of the previous version still runs ({holder}) after {STOP_WAIT_S:.0f} s: "
         "it writes tables readers left; stop it")
    return False
