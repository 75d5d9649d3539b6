"""CPU seconds of the whole machine and of each process of the stack, from ``/proc``: what tells a
benchmark bound by the cores from one bound by waiting, and who had the cores (the servers share
the job's cores here)."""
from __future__ import annotations

import os
from pathlib import Path


def machine_busy() -> float:
    """Busy core-seconds of the whole machine so far (all but idle and iowait, every core)."""
    # user nice system idle iowait irq softirq steal
    ticks = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


# Which process is which, by its command line: CPU seconds per part of the stack during a run.
# First match wins: a Spark JVM's class path names the PostgreSQL driver, so Spark comes before it.
PROCESS_GROUPS = (("org.apache.cassandra", "cassandra"), ("kafka.Kafka", "kafka"),
                  ("org.apache.spark.deploy.SparkSubmit", "spark_jvm"), ("weed", "s3"),
                  ("clickhouse_server", "clickhouse"), ("postgres", "postgres"), ("schemas.registry", "registry"),
                  ("prometheus", "prometheus"), ("pyspark.daemon", "spark_python_workers"),
                  ("pyspark.worker", "spark_python_workers"), ("multiprocessing", "bench_producer"),
                  ("bench/streaming.py", "bench_driver_python"))


def process_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (its group, its user + system clock ticks so far), for every process of the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        group = next((name for needle, name in PROCESS_GROUPS if needle in command), "other")
        found[int(entry.name)] = (group, int(stat[11]) + int(stat[12]))
    return found


def cpu_seconds() -> dict:
    """CPU seconds used so far by the whole machine (busy, all cores) and each process: what tells a
    run bound by the cores from one bound by waiting, and who had the cores (:func:`cpu_used`)."""
    return {"machine_busy": machine_busy(), "processes": process_ticks(), "tick": os.sysconf("SC_CLK_TCK")}


def cpu_used(before: dict) -> dict[str, float]:
    """CPU seconds since ``before`` (:func:`cpu_seconds`): the machine's, and per process group (the
    processes alive at both ends, and those started since), largest first."""
    after = cpu_seconds()
    groups: dict[str, float] = {}
    for pid, (group, ticks) in after["processes"].items():
        was = before["processes"].get(pid)
        used = ticks - (was[1] if was and was[0] == group else 0)
        groups[group] = groups.get(group, 0) + used / after["tick"]
    ranked = {k: round(v, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if v >= 0.1}
    return {"machine_busy": round(after["machine_busy"] - before["machine_busy"], 1), **ranked}
