"""The CDC connector beside Debezium's PostgreSQL connector, on the same table, in the same run:
``python bench/connectors.py --peer debezium [--events N] [--changes N] [--rate R] [--seconds S]``.

Each runs as its own process with its own slot and publication (pgoutput, both), publishing to its
own topics with the same producer settings (idempotent, acks=all, lz4, linger 5 ms); every topic is
created with ``LogAppendTime``, so a record's timestamp is when Kafka appended it. Three phases:

1. snapshot: N rows, each connector reads them alone (one after the other);
2. streaming catch-up: both stopped, ``pgbench`` writes C updates, then each resumes alone and
   publishes them: the rate it drains a backlog at;
3. latency: both running, ``pgbench -R R`` for S seconds; commit -> Kafka per event (the append
   time minus the transaction's commit time, ``source.ts_ms`` in both envelopes).

Rates are counted from a connector's first event of a phase to its last (start-up excluded for
both: a JVM and a Python interpreter start at different speeds, which says nothing of the
steady rate), and CPU seconds are the process's own (``/proc``) over the same window.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.streaming import percentiles
from kappa.settings import Settings, get_settings
from stack.kafka_connect import ConnectWorker, debezium_postgres

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
PRODUCER = {"enable.idempotence": "true", "acks": "all", "compression.type": "lz4", "linger.ms": "5"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICKS


@dataclass
class Window:
    """A connector's share of a phase: from its first event to its last."""
    events: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")

    @property
    def cpu_per_1k(self) -> float:
        return 1000 * self.cpu / self.events

    @property
    def per_cpu_second(self) -> float:
        return self.events / self.cpu if self.cpu else float("inf")


class Topic:
    def __init__(self, settings: Settings, name: str) -> None:
        self.name = name
        self.consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                                  "group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False})
        self.partitions = sorted(self.consumer.list_topics(name, timeout=10).topics[name].partitions)

    def ends(self) -> dict[int, int]:
        return {p: self.consumer.get_watermark_offsets(TopicPartition(self.name, p), timeout=10, cached=False)[1]
                for p in self.partitions}

    def count(self) -> int:
        return sum(self.ends().values())

    def read(self, since: dict[int, int]) -> list:
        """Every record after the offsets ``since``, to the end."""
        until = self.ends()
        self.consumer.assign([TopicPartition(self.name, p, since.get(p, 0)) for p in self.partitions])
        records, left = [], sum(until[p] - since.get(p, 0) for p in self.partitions)
        while left > 0:
            batch = [m for m in self.consumer.consume(10_000, 5.0) if not m.error()]
            if not batch:
                break
            records += [m for m in batch if m.offset() < until[m.partition()]]
            left = sum(until[p] - since.get(p, 0) for p in self.partitions) - len(records)
        return records


def watch(topic: Topic, process, baseline: int, target: int, timeout: float = 600) -> Window:
    """Poll the topic until it holds ``target`` records: the window from the first poll that saw one
    past ``baseline`` (what was there then is left out of the count, the time and the CPU alike)."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count, now = topic.count(), time.perf_counter()
        if process.process.poll() is not None:
            raise SystemExit(f"{topic.name}: its connector exited {process.process.returncode} (log: {process.log_file})")
        if first is None and count > baseline:
            first = (now, cpu_seconds(process.process.pid), count)
        if count >= target and first:
            t0, cpu0, count0 = first
            if count0 >= target:  # all of it in one poll interval: too few events to time
                raise SystemExit(f"{topic.name}: {target - baseline} events arrived within one 50 ms poll; use more")
            return Window(target - count0, now - t0, cpu_seconds(process.process.pid) - cpu0)
        time.sleep(0.05)
    raise SystemExit(f"{topic.name}: {topic.count() - baseline} of {target - baseline} events after {timeout:.0f} s")


class Ours:
    """The CDC connector as an operator runs it: ``python -m kappa connector cdc --config``."""

    def __init__(self, config: dict, folder: Path) -> None:
        from tests.conftest import write_toml

        self.path = folder / "cdc.toml"
        self.log_file = folder / "cdc.log"
        write_toml(self.path, config)
        self.process: subprocess.Popen | None = None

    def launch(self) -> None:
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "kappa", "connector", "cdc", "--config", str(self.path)],
                                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(60)


def pgbench(settings: Settings, folder: Path, table: str, rows: int, *args: str) -> int:
    """Updates of random rows; how many transactions pgbench committed."""
    script = folder / "update.sql"
    script.write_text(f"\\set id random(1, {rows})\n"
                      f"UPDATE public.{table} SET amount = amount + 1, status = 'PAID', updated_at = now() WHERE id = :id;\n")
    pg = settings.postgres
    binary = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)), None) or "pgbench"
    result = subprocess.run([str(binary), "-n", "-h", pg.host, "-p", str(pg.port), "-U", pg.user, "-f", str(script),
                             *args, pg.dbname], capture_output=True, text=True, env=dict(os.environ, PGPASSWORD=pg.password))
    if result.returncode != 0:
        raise SystemExit(f"pgbench failed: {result.stderr[-2000:]}")
    return int(re.search(r"number of transactions actually processed: (\d+)", result.stdout).group(1))


def commit_ts_ours(records, registry_url: str) -> list[tuple[int, int]]:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    decode = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    return [(m.timestamp()[1], decode(m.value(), None)["source"]["ts_ms"]) for m in records if m.value()]


def commit_ts_debezium(records) -> list[tuple[int, int]]:
    return [(m.timestamp()[1], json.loads(m.value())["payload"]["source"]["ts_ms"]) for m in records if m.value()]


def run(events: int, changes: int, rate: int, seconds: int) -> dict:
    settings = get_settings()
    tag = uuid.uuid4().hex[:8]
    table = f"bench_peer_{tag}"
    ours_topic, dbz_topic = f"bench.kappa{tag}.{table}", f"bench.dbz{tag}.public.{table}"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for future in admin.create_topics([NewTopic(t, 3, 1, config={"message.timestamp.type": "LogAppendTime"})
                                       for t in (ours_topic, dbz_topic)]).values():
        future.result()
    conn = psycopg2.connect(settings.postgres.dsn())
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f"""CREATE TABLE public.{table} (id bigint PRIMARY KEY, status text NOT NULL, amount numeric(12,2),
                    note text, updated_at timestamptz NOT NULL DEFAULT now())""")
    cur.execute(f"INSERT INTO public.{table} (id, status, amount, note) SELECT g, 'NEW', g * 0.5, 'bench row ' || g "
                "FROM generate_series(1, %s) g", (events,))
    folder = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    ours = Ours({"name": f"bench-peer-{tag}", "tables": [f"public.{table}"], "topic_prefix": f"bench.kappa{tag}",
                 "snapshot": "initial", "commit_interval_s": 1.0, "heartbeat_interval_s": 1.0}, folder)
    dbz = ConnectWorker(debezium_postgres(f"bench-dbz-{tag}", settings, tables=[f"public.{table}"],
                                          topic_prefix=f"bench.dbz{tag}", slot=f"dbz_{tag}", publication=f"dbz_{tag}"),
                        folder / "debezium", settings, producer=PRODUCER)
    sides = {"cdc connector": (ours, ours_topic), "debezium 3.5.0": (dbz, dbz_topic)}
    result: dict[str, dict] = {name: {} for name in sides}
    try:
        topics = {name: Topic(settings, topic) for name, (_, topic) in sides.items()}
        # 1. snapshot, each alone; stopped after it, once it committed its position
        for name, (process, _) in sides.items():
            process.launch()
            result[name]["snapshot"] = watch(topics[name], process, 0, events)
            time.sleep(3)
            process.stop()
        # 2. the updates while both are stopped; then each drains them alone
        done = {name: topics[name].count() for name in sides}
        committed = pgbench(settings, folder, table, events, "-c", "4", "-j", "2", "-t", str(changes // 4))
        for name, (process, _) in sides.items():
            process.launch()
            result[name]["streaming"] = watch(topics[name], process, done[name], done[name] + committed)
        # 3. latency, both running, the same load
        since = {name: topics[name].ends() for name in sides}
        cpu0 = {name: cpu_seconds(process.process.pid) for name, (process, _) in sides.items()}
        loaded = pgbench(settings, folder, table, events, "-c", "2", "-j", "2", "-R", str(rate), "-T", str(seconds))
        for name, (process, _) in sides.items():
            watch_until(topics[name], sum(since[name].values()) + loaded)
            cpu = cpu_seconds(process.process.pid) - cpu0[name]
            records = topics[name].read(since[name])
            pairs = commit_ts_ours(records, settings.registry.url) if name == "cdc connector" else commit_ts_debezium(records)
            result[name]["latency"] = {"events": len(pairs), "cpu_per_1k": 1000 * cpu / max(1, len(pairs)),
                                       "ms": percentiles([appended - at for appended, at in pairs])}
    finally:
        for process, _ in sides.values():
            process.stop()
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN (%s, %s) "
                    "AND NOT active", (f"kappa_bench_peer_{tag}", f"dbz_{tag}"))
        for publication in (f"kappa_bench_peer_{tag}", f"kappa_bench_peer_{tag}_inserts", f"dbz_{tag}"):
            cur.execute(f"DROP PUBLICATION IF EXISTS {publication}")
        cur.execute(f"DROP TABLE public.{table}")
        conn.close()
    return {"events": events, "changes": committed, "rate": rate, "seconds": seconds, "sides": result}


def watch_until(topic: Topic, target: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while topic.count() < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"{topic.name}: {topic.count()} of {target} records after {timeout:.0f} s")
        time.sleep(0.1)


def table(report: dict) -> str:
    """The side-by-side table (Markdown), the CDC connector's figure over Debezium's as the ratio."""
    ours, dbz = report["sides"]["cdc connector"], report["sides"]["debezium 3.5.0"]
    rows = [
        (f"snapshot, events/s ({report['events']:,} rows)", ours["snapshot"].rate, dbz["snapshot"].rate, "{:,.0f}"),
        ("snapshot, CPU s per 1K events", ours["snapshot"].cpu_per_1k, dbz["snapshot"].cpu_per_1k, "{:.3f}"),
        ("snapshot, events per CPU second", ours["snapshot"].per_cpu_second, dbz["snapshot"].per_cpu_second, "{:,.0f}"),
        (f"streaming catch-up, events/s ({report['changes']:,} pgbench updates)", ours["streaming"].rate,
         dbz["streaming"].rate, "{:,.0f}"),
        ("streaming, CPU s per 1K events", ours["streaming"].cpu_per_1k, dbz["streaming"].cpu_per_1k, "{:.3f}"),
        ("streaming, events per CPU second", ours["streaming"].per_cpu_second, dbz["streaming"].per_cpu_second, "{:,.0f}"),
    ]
    for q in ("p50", "p95", "p99"):
        rows.append((f"commit -> Kafka {q}, ms (pgbench -R {report['rate']}, both running)",
                     ours["latency"]["ms"][f"{q}_ms"], dbz["latency"]["ms"][f"{q}_ms"], "{:,.0f}"))
    rows.append((f"CPU s per 1K events at {report['rate']}/s", ours["latency"]["cpu_per_1k"], dbz["latency"]["cpu_per_1k"],
                 "{:.3f}"))
    lines = ["| | CDC connector | Debezium 3.5.0 | ratio |", "|---|---:|---:|---:|"]
    for label, a, b, fmt in rows:
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {a / b if b else float('inf'):.2f} |")
    return "\n".join(lines)
