"""Bring the whole stack up, report it, take it down.

``up`` provisions every service (quick once cached), then starts each as soon as the services it
depends on are healthy, waiting for health in parallel; a failure names the service and shows the
end of its log, and the command exits non-zero.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Sequence

from stack.airflow import Airflow
from stack.alertmanager import Alertmanager
from stack.cassandra import Cassandra
from stack.clickhouse import ClickHouse
from stack.kafka import Kafka
from kappa.settings.paths import local_spark
from stack.paths import stack_home
from stack.postgres import Postgres
from stack.process import ServiceError
from stack.provision import java17_home
from stack.prometheus import Prometheus
from stack.registry import SchemaRegistry
from stack.s3 import S3
from stack.service import Service, Status
from stack.spark import connector_jars
from stack.spark_cluster import SparkMaster, SparkWorker1, SparkWorker2

SERVICES: tuple[type[Service], ...] = (Kafka, SchemaRegistry, Cassandra, S3, ClickHouse, Postgres, Alertmanager,
                                       Prometheus)
# Started only when named (python -m stack up airflow | spark): slower to start than the rest
# together, and only some tests need them.
OPTIONAL: tuple[type[Service], ...] = (Airflow, SparkMaster, SparkWorker1, SparkWorker2)
# Names that stand for several services.
GROUPS = {"spark": ("spark-master", "spark-worker-1", "spark-worker-2")}


def expand(names: Sequence[str]) -> list[str]:
    """Service names, a group's (``spark``) replaced by its members'."""
    return [member for name in names for member in GROUPS.get(name, (name,))]


def services(names: Sequence[str] = ()) -> list[Service]:
    """The services called ``names`` (all if empty), with what they depend on."""
    all_services = {cls.name: cls() for cls in SERVICES + OPTIONAL}
    names = expand(names)
    unknown = [n for n in names if n not in all_services]
    if unknown:
        raise ServiceError(f"unknown service(s) {unknown}; known: {', '.join(all_services)}")
    wanted: list[str] = []

    def add(name: str) -> None:
        for dep in all_services[name].depends_on:
            add(dep)
        if name not in wanted:
            wanted.append(name)

    for name in names or [cls.name for cls in SERVICES]:
        add(name)
    return [all_services[n] for n in wanted]


def up(names: Sequence[str] = (), echo=print) -> list[str]:
    """Start what is stopped and wait for health; returns the failure messages (empty when all is up)."""
    chosen = services(names)
    failures: dict[str, str] = {}
    started = time.monotonic()
    echo(f"stack home: {stack_home()}")
    if not names:
        try:
            # The SparkSession's jars and Java, so tests and jobs start without network (streaming/session.py).
            local_spark().parent.mkdir(parents=True, exist_ok=True)
            local_spark().write_text(json.dumps({"jars": connector_jars(), "java_home": str(java17_home())}))
            echo(f"  {'spark-jars':<16} ready (resolved from Maven Central into ~/.m2)")
        except ServiceError as exc:
            failures["spark-jars"] = str(exc)
    ready = {s.name: threading.Event() for s in chosen}
    lock = threading.Lock()

    def run(service: Service) -> None:
        try:
            for dep in service.depends_on:
                ready[dep].wait()
                if dep in failures:
                    raise ServiceError(f"{service.name}: not started because {dep} failed")
            t0 = time.monotonic()
            service.provision()
            service.prepare()
            was_running = service.pid() is not None and not service.code_changed()
            service.start()
            service.wait_healthy()
            with lock:
                what = "already running" if was_running else f"started in {time.monotonic() - t0:.1f}s"
                echo(f"  {service.name:<16} up    127.0.0.1:{service.port:<6} {what}")
        except Exception as exc:  # every failure must reach the summary, whatever raised it
            with lock:
                failures[service.name] = str(exc) if isinstance(exc, ServiceError) else f"{service.name}: {exc!r}"
                echo(f"  {service.name:<16} FAILED")
        finally:
            ready[service.name].set()

    threads = [threading.Thread(target=run, args=(s,), name=s.name) for s in chosen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    echo(f"stack {'up' if not failures else 'NOT up'} after {time.monotonic() - started:.1f}s")
    return [f"{name} failed to start:\n{message}" for name, message in failures.items()]


def down(names: Sequence[str] = (), echo=print) -> None:
    """Stop the named services (not what they depend on), or every service."""
    chosen = [s for s in services(names) if s.name in expand(names)] if names else \
        [cls() for cls in SERVICES + OPTIONAL]
    for service in reversed(chosen):
        if service.stop():
            echo(f"  {service.name:<16} stopped")


def status(names: Sequence[str] = ()) -> list[Status]:
    """The named services; by default every one of ``make up`` and the optional ones that run."""
    chosen = services(names) if names else [cls() for cls in SERVICES] + \
        [s for s in (cls() for cls in OPTIONAL) if s.pid() is not None]
    return [s.status() for s in chosen]


def clean(echo=print) -> None:
    """Stop everything and drop all data; resolved classpaths (the cache) stay."""
    down(echo=echo)
    home = stack_home()
    if home.exists():
        for child in home.iterdir():
            if child.name != "cache":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    echo(f"removed the stack's data under {home}")
