"""End-to-end throughput and latency of the orders job, against raw reads and writes of the same data.

    python bench/streaming.py [--events N] [--rates R1,R2] [--seconds S] [--only-latency | --skip-latency]

1. Baselines, in the same run: Spark reading the N records from Kafka (raw read, best of three);
   each store's own client writing the same rows at its best concurrency from two processes (the
   machine's cores): clickhouse-connect Arrow inserts, the Cassandra sink's acsylla beside
   cassandra-driver and scyllapy (prepared statements in replica-grouped unlogged batches, with the
   CPU each client and Cassandra's server spend per 1K rows: bench/cassandra_clients.py), psycopg2
   COPY + upsert (raw writes).
2. Throughput: N order events (each a new key, so every sink writes every row) wait in Kafka; the
   job catches up with all four sinks on ``local[2]`` and on ``local[1]``, then with ClickHouse +
   lake on ``local[2]`` and on ``local[1]`` (the same scaling without Cassandra's server taking the
   second core). Each catch-up is a fresh job process (``--catch-up``) that first catches up
   on a 50K-event warm-up topic, so the JVM is warm; events / wall time from the job's start.
3. Latency, at each of ``--rates`` for ``--seconds``, with a producer process at that fixed rate:
   first Spark's floor (the same topic read by a query with the job's 0.5 s trigger into Spark's
   ``noop`` sink: event -> the end of the batch that read it, from the query's progress and each
   record's Kafka timestamp), then the job with all four sinks (its lake committed every 30 s),
   measured from when every store, the lake too, holds the floor's events:
   event -> visible in ClickHouse (its ``_ingested_at``), in PostgreSQL and Cassandra (a read loop
   every 50 ms over a sample of ~20 events a second), in all three ("serving"), and in the lake (a
   Delta version holding it, as the ``deltalake`` reader sees it, polled every 0.5 s); p50 / p95 /
   p99. Then an almost idle run (``--idle-rate``, 20 s) whose serving batches are profiled stage by
   stage: Spark's ``durationMs`` and the job's own per-partition timings, medians.
Reported: events/s and ratios to the raw Kafka read and to the slowest raw sink write, and the CPU
seconds the machine and Cassandra's server used during each catch-up. Needs `make up`.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
import uuid
from datetime import timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402

from schemas import contracts  # noqa: E402
from schemas.serde import AvroSerializer  # noqa: E402
from kappa.settings import get_settings  # noqa: E402
from bench.cassandra_clients import print_table as cassandra_clients_table  # noqa: E402
from bench.cpu import cpu_seconds, cpu_used, machine_busy  # noqa: E402


class OrderProducer:
    def __init__(self, topic: str, create: bool = True, first_id: int = 0) -> None:
        settings = get_settings()
        if create:
            admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})  # alive until the result
            admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
        registry = SchemaRegistryClient({"url": settings.registry.url})
        self.topic = topic
        self.value = AvroSerializer(registry, f"{topic}-value", contracts.contract("shop.api.orders").schema)
        self.key = AvroSerializer(registry, f"{topic}-key", '"string"')
        self.producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 5,
                                  "batch.size": 1_000_000, "compression.type": "lz4",
                                  "queue.buffering.max.messages": 1_000_000})
        self.next_id = first_id

    def send(self, count: int) -> None:
        for _ in range(count):
            now = int(time.time() * 1000)
            i = self.next_id
            self.next_id += 1
            event = {"event_id": f"bench-{i}", "event_time": now,
                     "source": {"connector": "bench", "position": str(i), "ts_ms": now},
                     "order_id": i, "customer_id": i % 1000, "status": "PAID", "amount": (i % 500) + 0.5,
                     "currency": "EUR", "updated_at": now}
            while True:
                try:
                    self.producer.produce(self.topic, key=self.key(str(i)), value=self.value(event))
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)

    def flush(self) -> None:
        self.producer.flush(120)


def orders_pipeline(name: str, topic: str, namespace: str, **settings):
    """The orders pipeline on ``topic``, in ``namespace`` with the demo's customers to join."""
    from demo.__main__ import seed_customers
    from streaming import pipelines
    from streaming.jobs import pipeline

    seed_customers(namespace)
    return pipeline.load(pipelines.path("orders"), name=name, topic=topic, namespace=namespace, **settings)


def job(name: str, topic: str, namespace: str, sinks: list[str], trigger: float = 0.5, lake_trigger: float = 30.0,
        on_result=None):
    from streaming.jobs.runner import JobRunner
    from streaming.session import build_session

    settings = {"lake_trigger_seconds": lake_trigger} if lake_trigger_supported() else {}
    orders = orders_pipeline(name, topic, namespace, sinks=sinks, trigger_seconds=trigger, **settings,
                             max_offsets_per_trigger=200_000, checkpoint_dir=f"/tmp/kappa-bench/{uuid.uuid4().hex}")
    return JobRunner(orders.definition(), orders, get_settings(), build_session("bench"), on_result=on_result)


def lake_trigger_supported() -> bool:
    """Whether this checkout's pipelines commit the lake on a clock of its own (the bench also runs
    older checkouts, for figures before and after a change in one run)."""
    from streaming.plan import JobConfig

    return "lake_trigger_seconds" in JobConfig.model_fields


def catch_up(topic: str, events: int, sinks: list[str], master: str = "local[2]", warm_up: str | None = None) -> dict:
    """A fresh job process on ``master`` catching up on the topic (after one on ``warm_up``, so the
    JVM has compiled the hot paths); its events/s and per-stage seconds."""
    import subprocess

    env = dict(os.environ, KAPPA_SPARK__MASTER=master)
    result = subprocess.run([sys.executable, __file__, "--catch-up", topic, "--events", str(events),
                             "--latency-sinks", ",".join(sinks), *(["--warm-up", warm_up] if warm_up else [])],
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"catch-up on {master} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _catch_up_here(topic: str, events: int, sinks: list[str], warm_up: str | None = None) -> dict:
    logging.basicConfig(level=logging.WARNING)  # a failing or restarting job says why on stderr
    if warm_up:
        tag = uuid.uuid4().hex[:8]
        job(f"bench-warm-{tag}", warm_up, f"bench_warm_{tag}", sinks).run(available_now=True)
    batches = BatchLines()
    batches.start()
    tag = uuid.uuid4().hex[:8]
    runner = job(f"bench-{tag}", topic, f"bench_{tag}", sinks, on_result=batches)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    runner.run(available_now=True)
    elapsed = time.perf_counter() - started
    cpu = cpu_used(cpu_before)
    stages = {k for b in batches.batches for k in b} - {"rows", "foreach_batch_s"}
    return {"per_s": events / elapsed, "seconds": round(elapsed, 1),
            "partition_seconds": {k: round(sum(b.get(k, 0) for b in batches.batches), 1) for k in sorted(stages)},
            "cpu_seconds": {**cpu, "available": round(elapsed * (os.cpu_count() or 1), 1)}}


def _orders_rows(count: int):
    """``count`` orders rows shaped like the serving table, as Arrow (no Spark)."""
    from datetime import datetime, timezone

    import pyarrow as pa

    now = datetime.now(timezone.utc)
    ids = pa.array(range(count), pa.int64())
    strings = pa.array([str(i) for i in range(count)])
    return pa.table({"order_id": ids, "customer_id": pa.array([i % 1000 for i in range(count)], pa.int64()),
                     "status": pa.array(["PAID"] * count), "amount": pa.array([1.5] * count),
                     "currency": pa.array(["EUR"] * count),
                     "customer_segment": pa.nulls(count, pa.string()), "customer_country": pa.nulls(count, pa.string()),
                     "updated_at": pa.array([now] * count, pa.timestamp("us", "UTC")), "event_id": strings,
                     "event_time": pa.array([now] * count, pa.timestamp("us", "UTC")), "_version": ids,
                     "_deleted": pa.array([False] * count)})


def orders_table(topic: str):
    """The orders pipeline's serving table for ``topic``, as the pipeline derives it."""
    from streaming.plan import serving_table
    from streaming.session import build_session

    orders = orders_pipeline("bench", topic, f"bench_shape_{uuid.uuid4().hex[:8]}")
    return serving_table(orders.definition(), orders, get_settings(), build_session("bench"))


def _raw_postgres_write(namespace: str, start: int, count: int, table) -> float:
    """One process's share of a raw PostgreSQL write (its own process: the client is Python)."""
    from streaming.stores.base import WriteToken
    from streaming.stores.postgres import PostgresSink

    rows = _orders_rows(start + count).slice(start, count)
    sink = PostgresSink(get_settings(), namespace)
    sink.write(rows.slice(0, 100), table, WriteToken("raw", 0, start))  # connect
    started = time.perf_counter()
    for offset in range(0, count, 50_000):
        sink.write(rows.slice(offset, 50_000), table, WriteToken("raw", 1, start + offset))
    elapsed = time.perf_counter() - started
    sink.close()
    return elapsed


def raw_postgres_write(rows: int, table) -> dict:
    """The PostgreSQL sink's own client (COPY + upsert) from two processes: rows/s, busy core-seconds."""
    from concurrent.futures import ProcessPoolExecutor

    from streaming import stores

    namespace = f"bench_raw_{uuid.uuid4().hex[:8]}"
    stores.get("postgres").ensure_table(get_settings(), namespace, table, "bench")
    half = rows // 2
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(time.sleep, [0.5, 0.5]))  # both processes started (spawned on demand) before the clock
        busy, started = machine_busy(), time.perf_counter()
        list(pool.map(_raw_postgres_write, [namespace, namespace], [0, half], [half, half], [table, table]))
        return {"per_s": rows / (time.perf_counter() - started), "busy_s": machine_busy() - busy}


def raw_cassandra_writes(rows: int, table) -> dict[str, dict]:
    """The Cassandra sink's client (acsylla) beside cassandra-driver and scyllapy, each at its best
    concurrency among a few (bench/cassandra_clients.py)."""
    from bench import cassandra_clients

    data = _orders_rows(rows)
    best: dict[str, dict] = {}
    for client in cassandra_clients.CLIENTS:
        runs = [cassandra_clients.write(client, data, table, concurrency) for concurrency in (16, 48, 128)]
        best[client] = max(runs, key=lambda r: r["rows_per_s"])
    return best


def raw_read(topic: str, events: int) -> dict:
    """Spark reading the topic (no decode): events/s and the machine's busy core-seconds meanwhile."""
    from pyspark.sql import functions as F

    from streaming.session import build_session

    spark = build_session("bench")
    settings = get_settings()
    busy, started = machine_busy(), time.perf_counter()
    df = (spark.read.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
          .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest").load())
    total = df.agg(F.count("*"), F.sum(F.length("value"))).collect()[0]
    assert total[0] >= events
    return {"per_s": events / (time.perf_counter() - started), "busy_s": machine_busy() - busy}


def raw_clickhouse_and_lake_writes(topic: str, table) -> dict[str, dict]:
    """The same rows, decoded and shaped for the table once (cached), inserted into ClickHouse as
    Arrow, and appended to a Delta table by Spark: each one's rows/s and busy core-seconds."""
    import clickhouse_connect
    import pyarrow as pa
    from pyspark.sql import functions as F

    from streaming.decode import Decoder
    from streaming.session import build_session
    from streaming import stores
    from streaming.stores import lake

    settings = get_settings()
    spark = build_session("bench")
    decoder = Decoder.from_registry(SchemaRegistryClient({"url": settings.registry.url}), topic)
    df = (spark.read.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
          .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest").load())
    shaped = (decoder.decode(df).select("_decoded.*")
              .withColumn("customer_segment", F.lit(None).cast("string"))
              .withColumn("customer_country", F.lit(None).cast("string"))
              .withColumn("_version", F.unix_micros("updated_at")).withColumn("_deleted", F.lit(False))
              .select(*table.all_columns).cache())
    count = shaped.count()
    rows = shaped.toArrow()
    rows = rows.set_column(rows.schema.get_field_index("_deleted"), "_deleted",  # as the ClickHouse sink sends it
                           rows["_deleted"].cast(pa.uint8()))
    namespace = f"bench_raw_{uuid.uuid4().hex[:8]}"
    stores.get("clickhouse").ensure_table(settings, namespace, table, "bench")
    ch = settings.clickhouse
    client = clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password)
    chunk = 200_000
    busy, started = machine_busy(), time.perf_counter()
    for start in range(0, rows.num_rows, chunk):
        client.insert_arrow(f"{namespace}.orders", rows.slice(start, chunk))
    results = {"clickhouse": {"per_s": rows.num_rows / (time.perf_counter() - started), "busy_s": machine_busy() - busy}}
    location = lake.ensure_table(spark, settings, namespace, table, "bench")
    busy, started = machine_busy(), time.perf_counter()
    lake.append(shaped, location, "bench-raw", 0)
    results["lake"] = {"per_s": count / (time.perf_counter() - started), "busy_s": machine_busy() - busy}
    shaped.unpersist()
    return results


def efficiency(events: int, pipeline: dict, raw: dict[str, tuple[float, int]]) -> dict:
    """The machine's busy core-seconds per 1K events of a pipeline run against the sum of those of its
    raw steps (``raw``: step -> (busy core-seconds, rows)); 1.0 = the pipeline costs what its parts do."""
    parts = {step: round(busy / rows * 1000, 3) for step, (busy, rows) in raw.items()}
    cost = pipeline["cpu_seconds"]["machine_busy"] / events * 1000
    return {"pipeline_core_s_per_1k": round(cost, 3), "raw_core_s_per_1k": parts,
            "efficiency": round(sum(parts.values()) / cost, 2)}


def produce_at_rate(topic: str, rate: int, seconds: int, first_id: int = 1) -> None:
    """R events/s for S seconds, in tenths of a second (run in its own process, like a connector)."""
    producer = OrderProducer(topic, create=False, first_id=first_id)
    started = time.perf_counter()
    for tick in range(seconds * 10):
        producer.send(rate // 10)
        delay = started + (tick + 1) / 10 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    producer.flush()


def feed(topic: str, rate: int, seconds: int, first_id: int) -> int:
    """``produce_at_rate`` in a separate process (the producer's Python must not compete with the
    job's driver for the GIL); the next free order id."""
    feeder = multiprocessing.get_context("spawn").Process(target=produce_at_rate, args=(topic, rate, seconds, first_id))
    feeder.start()
    feeder.join()
    if feeder.exitcode != 0:
        raise RuntimeError(f"the producer process failed (exit code {feeder.exitcode})")
    return first_id + rate // 10 * seconds * 10


def percentiles(values: list[float]) -> dict:
    """p50 / p95 / p99 in milliseconds (nearest rank)."""
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "n": 0}
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))])  # noqa: E731
    return {"p50_ms": pick(0.5), "p95_ms": pick(0.95), "p99_ms": pick(0.99), "n": len(ordered)}


def record_times(topic: str) -> dict[tuple[int, int], int]:
    """(partition, offset) -> the record's Kafka timestamp (its produce time, ms) of every record."""
    from confluent_kafka import Consumer, TopicPartition

    settings = get_settings()
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"bench-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    times: dict[tuple[int, int], int] = {}
    while sum(1 for (p, o) in times if o == ends[p] - 1) < sum(1 for p in ends if ends[p] > 0):
        for message in consumer.consume(10_000, timeout=1):
            if message.error() is None:
                times[(message.partition(), message.offset())] = message.timestamp()[1]
    consumer.close()
    return times


def spark_floor(topic: str, rate: int, seconds: int, trigger: float, first_id: int) -> tuple[dict, int]:
    """Spark's own floor: the topic read by a query with the pipeline's trigger into the ``noop`` sink
    (no decode, no sinks) while the producer runs; event (its Kafka timestamp) -> the end of the
    batch that read it. The next free order id."""
    from datetime import datetime

    from streaming.session import build_session

    spark = build_session("bench")
    settings = get_settings()
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "100000")
    query = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
             .option("subscribe", topic).option("startingOffsets", "latest").load()
             .writeStream.format("noop").queryName(f"floor-{uuid.uuid4().hex[:8]}")
             .option("checkpointLocation", f"/tmp/kappa-bench/{uuid.uuid4().hex}")
             .trigger(processingTime=f"{trigger} seconds").start())
    while not query.recentProgress:
        time.sleep(0.1)
    next_id = feed(topic, rate, seconds, first_id)
    produced = next_id - first_id
    deadline = time.monotonic() + 60
    while sum(p["numInputRows"] for p in query.recentProgress) < produced and time.monotonic() < deadline:
        time.sleep(0.2)
    progress = query.recentProgress
    query.stop()
    times = record_times(topic)
    latencies = []
    for batch in progress:
        source = batch["sources"][0]
        if not batch["numInputRows"] or not source.get("startOffset"):
            continue
        started = datetime.fromisoformat(batch["timestamp"].replace("Z", "+00:00")).timestamp() * 1000
        ended = started + batch["durationMs"]["triggerExecution"]
        begin, end = json.loads(source["startOffset"])[topic], json.loads(source["endOffset"])[topic]
        for partition, last in end.items():
            for offset in range(begin.get(partition, 0), last):
                produced_at = times.get((int(partition), offset))
                if produced_at is not None:
                    latencies.append(ended - produced_at)
    return {**percentiles(latencies), "batches": sum(1 for b in progress if b["numInputRows"]),
            "median_batch_ms": _median([b["durationMs"]["triggerExecution"] for b in progress if b["numInputRows"]])}, next_id


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


class Visibility(threading.Thread):
    """Polls one store for a sample of order ids until each is visible: event_time -> first seen.

    ``lookup(ids)`` returns {order_id: event_time in ms} of the ids the store holds. The ids are
    asked for oldest first, a few dozen at a time (they were produced in that order), every
    ``interval`` s; an id counts as seen when the query that found it returned (so the figure
    includes that query's own time)."""

    def __init__(self, store: str, lookup, ids: list[int], interval: float = 0.05, batch: int = 30) -> None:
        super().__init__(daemon=True, name=f"visible-{store}")
        self.store, self.lookup, self.interval, self.batch = store, lookup, interval, batch
        self.pending = sorted(ids)
        self.seen: dict[int, float] = {}  # order id -> latency ms
        self.done = threading.Event()

    def run(self) -> None:
        while self.pending and not self.done.is_set():
            try:
                found = self.lookup(self.pending[:self.batch])
            except Exception:  # the table may not exist yet
                found = {}
            now = time.time() * 1000
            for order_id, event_time in found.items():
                self.seen[order_id] = now - event_time
            if found:
                self.pending = [i for i in self.pending if i not in found]
            self.done.wait(self.interval)


def _store_lookups(namespace: str) -> dict:
    """order ids -> {order id: event_time ms} in PostgreSQL, Cassandra and the lake."""
    import psycopg2
    from deltalake import DeltaTable

    from streaming.stores import lake as lake_sink
    from streaming.stores.cassandra import connect

    settings = get_settings()
    pg = psycopg2.connect(settings.postgres.dsn())
    pg.autocommit = True
    _, cassandra = connect(settings)

    def postgres(ids):
        with pg.cursor() as cur:
            cur.execute(f"SELECT order_id, (extract(epoch FROM event_time) * 1000)::bigint FROM {namespace}.orders "
                        "WHERE order_id = ANY(%s)", (ids,))
            return dict(cur.fetchall())

    def cassandra_(ids):
        rows = cassandra.execute(f"SELECT order_id, event_time FROM {namespace}.orders WHERE order_id IN "
                                 f"({','.join(str(i) for i in ids)})")
        return {r.order_id: r.event_time.replace(tzinfo=timezone.utc).timestamp() * 1000 for r in rows}

    table: list = []
    read_version: list = [None]

    def lake(ids):  # a Delta version holding the change, as the deltalake package (a reader) sees it
        if not table:
            table.append(DeltaTable(lake_sink.uri(settings, namespace, "orders"),
                                    storage_options=lake_sink.storage_options(settings)))
        else:
            table[0].update_incremental()
        if table[0].version() == read_version[0]:
            return {}  # this version held none of the ids asked: nothing new until the next commit
        rows = table[0].to_pyarrow_table(columns=["order_id", "event_time"], filters=[("order_id", "in", ids)])
        read_version[0] = table[0].version() if rows.num_rows == 0 else None
        return {i: t.timestamp() * 1000 for i, t in zip(rows["order_id"].to_pylist(), rows["event_time"].to_pylist())}

    return {"postgres": postgres, "cassandra": cassandra_, "lake": lake}


def latency(rate: int, seconds: int, sinks: list[str], trigger: float = 0.5, lake_trigger: float = 30.0) -> dict:
    """Spark's floor, then the pipeline with ``sinks``, each at ``rate`` events/s for ``seconds`` on one topic."""
    import clickhouse_connect

    tag = uuid.uuid4().hex[:8]
    topic, namespace = f"bench.{tag}.latency", f"bench_lat_{tag}"
    producer = OrderProducer(topic)
    producer.send(1)  # order 0: the topic's schema exists before anything reads it
    producer.flush()
    floor, next_id = spark_floor(topic, rate, seconds, trigger, first_id=1)

    batches = BatchLines()
    runner = job(f"bench-lat-{tag}", topic, namespace, sinks, trigger, lake_trigger, on_result=batches)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    settings = get_settings()
    ch = clickhouse_connect.get_client(host=settings.clickhouse.host, port=settings.clickhouse.port)

    def visible() -> int:
        try:
            return ch.query(f"SELECT count() FROM {namespace}.orders").result_rows[0][0]
        except Exception:
            return 0

    while visible() < next_id:  # the floor's events first: the job starts from the topic's start
        time.sleep(0.2)
    lookups = _store_lookups(namespace)
    # ... and in the lake too, so that catching up on them (a first lake commit of the floor's events,
    # many seconds beside the serving batches) is not inside the measured run.
    def lake_holds(order_id: int) -> bool:
        try:
            return bool(lookups["lake"]([order_id]))
        except Exception:  # no lake table yet
            return False

    while "lake" in sinks and not lake_holds(next_id - 1) and thread.is_alive():
        time.sleep(0.5)
    first_id = next_id
    step = max(1, rate // 20)  # about 20 sampled events a second: the read loops must not load the stores
    sample = list(range(first_id, first_id + rate * seconds, step))
    watchers = {store: Visibility(store, lookups[store], sample, interval=0.5 if store == "lake" else 0.05)
                for store in ("postgres", "cassandra", "lake") if store in sinks}
    for watcher in watchers.values():
        watcher.start()
    cpu_before = cpu_seconds()
    batches.start()
    produced_to = feed(topic, rate, seconds, first_id)
    deadline = time.monotonic() + 120 + lake_trigger
    while (visible() < produced_to or any(w.pending for w in watchers.values())) and time.monotonic() < deadline:
        time.sleep(0.2)
    cpu = cpu_used(cpu_before)
    progress = [p for p in runner._query.recentProgress if p["numInputRows"]]
    batches.stop()
    runner.stop()
    thread.join(60)
    for watcher in watchers.values():
        watcher.done.set()
    clickhouse = {order_id: ms for order_id, ms in ch.query(
        "SELECT order_id, toUnixTimestamp64Milli(_ingested_at) - toUnixTimestamp64Milli(event_time) "
        f"FROM {namespace}.orders WHERE order_id >= {first_id}").result_rows}
    stores = {"clickhouse": percentiles(list(clickhouse.values()))} if "clickhouse" in sinks else {}
    stores.update({store: percentiles(list(w.seen.values())) for store, w in watchers.items()})
    serving = [s for s in ("clickhouse", "postgres", "cassandra") if s in sinks]
    seen = {"clickhouse": clickhouse, **{s: w.seen for s, w in watchers.items()}}
    everywhere = [max(seen[s][i] for s in serving) for i in sample if all(i in seen[s] for s in serving)]
    result = {"rate": rate, "seconds": seconds, "sinks": sinks, "trigger_s": trigger, "lake_trigger_s": lake_trigger,
              "floor": floor, "serving": percentiles(everywhere), "stores": stores,
              "visible": visible() - first_id, "produced": produced_to - first_id,
              "serving_batch_ms": _stage_medians(progress), "foreach_batch": batches.medians(),
              "lake_commits": batches.lake_commits, "cpu_seconds": cpu}
    if floor["p95_ms"] and result["serving"]["p95_ms"]:
        result["serving_p95_to_floor_p95"] = round(result["serving"]["p95_ms"] / floor["p95_ms"], 2)
    return result


class BatchLines:
    """The serving batches' own account while a job runs (its ``on_result``): the foreachBatch's
    wall time and the per-partition stage seconds (summed over partitions), and the lake's commits."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.lake_commits: list[dict] = []
        self.recording = False

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def __call__(self, result) -> None:
        from streaming.stores.writer import BatchResult

        if not self.recording:
            return
        if isinstance(result, BatchResult):
            self.batches.append({"rows": result.rows, "foreach_batch_s": result.seconds, **result.partition_seconds})
        else:
            self.lake_commits.append({"changes": result.changes, "seconds": result.seconds})

    def medians(self) -> dict:
        keys = sorted({k for b in self.batches for k in b})
        return {k: _median([b.get(k, 0) for b in self.batches]) for k in keys} | {"batches": len(self.batches)}


def _stage_medians(progress: list[dict]) -> dict:
    """The median of each ``durationMs`` stage over a query's batches (Spark's own account)."""
    stages = sorted({k for p in progress for k in p["durationMs"]})
    return {k: _median([p["durationMs"].get(k, 0) for p in progress]) for k in stages}


def latency_runs(args, sinks: list[str]) -> dict:
    """The latency runs at each rate and the almost idle one, printed as a table; their results."""
    runs = [latency(int(rate), args.seconds, sinks) for rate in args.rates.split(",")]
    idle = latency(args.idle_rate, 20, sinks) if args.idle_rate else None
    print(f"latency into {'+'.join(sinks)} (ms; serving = visible in every serving store, floor = Spark's noop "
          "query with the same trigger):")
    print(f"{'rate/s':>8} {'floor p50':>10} {'floor p95':>10} {'serving p50':>12} {'p95':>7} {'p99':>7} "
          f"{'ratio p95':>10}  per store p95 (p50)")
    for run in runs + ([idle] if idle else []):
        stores = ", ".join(f"{k} {v['p95_ms']} ({v['p50_ms']})" for k, v in run["stores"].items())
        print(f"{run['rate']:>8,} {run['floor']['p50_ms']:>10} {run['floor']['p95_ms']:>10} "
              f"{run['serving']['p50_ms']:>12} {run['serving']['p95_ms']:>7} {run['serving']['p99_ms']:>7} "
              f"{run.get('serving_p95_to_floor_p95', '-'):>10}  {stores}")
    for run in runs:
        commits = ", ".join(f"{c['changes']:,} in {c['seconds']:.1f} s" for c in run["lake_commits"])
        print(f"lake commits at {run['rate']:,}/s: {commits or 'none'}")
        print(f"CPU seconds at {run['rate']:,}/s: " + ", ".join(f"{k} {v}" for k, v in run["cpu_seconds"].items()))
    if idle:
        print(f"an almost idle serving batch ({args.idle_rate}/s), medians: Spark's durationMs {idle['serving_batch_ms']}, "
              f"inside foreachBatch {idle['foreach_batch']}")
    return {"runs": runs, "idle": idle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rates", default="1000,5000,10000",
                        help="events/s of the latency runs (each: Spark's floor, then the pipeline)")
    parser.add_argument("--seconds", type=int, default=60, help="of each latency run")
    parser.add_argument("--idle-rate", type=int, default=10,
                        help="events/s of the almost idle run whose batches are profiled stage by stage (0: none)")
    parser.add_argument("--latency-sinks", default="lake,clickhouse,cassandra,postgres",
                        help="sinks of the latency run (and of a --catch-up)")
    parser.add_argument("--raw-rows", type=int, default=200_000, help="rows of each raw store write")
    parser.add_argument("--only-latency", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--catch-up", metavar="TOPIC", help=argparse.SUPPRESS)  # one catch-up, in this process
    parser.add_argument("--warm-up", metavar="TOPIC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sinks = args.latency_sinks.split(",")
    if args.catch_up:
        print(json.dumps(_catch_up_here(args.catch_up, args.events, sinks, args.warm_up)))
        return
    if args.only_latency:
        print(json.dumps(latency_runs(args, sinks)))
        return
    topic = f"bench.{uuid.uuid4().hex[:8]}.orders"
    producer = OrderProducer(topic)
    producer.send(args.events)
    producer.flush()
    warm = f"bench.{uuid.uuid4().hex[:8]}.warmup"  # each catch-up process first runs on this
    warm_producer = OrderProducer(warm, first_id=10_000_000)
    warm_producer.send(50_000)
    warm_producer.flush()
    raw_read(topic, args.events)  # warm-up: the first Spark job of a session pays for JIT and planning
    # The best of three: one read of 300K records takes ~2 s and varied from 125K to 155K/s between
    # runs here, enough to move every ratio to it by a fifth.
    reading = max((raw_read(topic, args.events) for _ in range(3)), key=lambda r: r["per_s"])
    read = reading["per_s"]
    table = orders_table(topic)
    cassandra_clients = raw_cassandra_writes(args.raw_rows, table)
    raw = {**raw_clickhouse_and_lake_writes(topic, table),
           "cassandra": {"per_s": cassandra_clients["sink"]["rows_per_s"],
                         "busy_s": cassandra_clients["sink"]["machine_busy_s"]},
           "postgres": raw_postgres_write(args.raw_rows, table)}
    writes = {store: raw[store]["per_s"] for store in ("clickhouse", "cassandra", "postgres")}
    slowest = min(writes.values())
    # Each raw step's busy core-seconds and its rows: the parts a pipeline's CPU is compared with.
    steps = {"kafka_read": (reading["busy_s"], args.events),
             **{store: (raw[store]["busy_s"], args.events if store in ("clickhouse", "lake") else args.raw_rows)
                for store in raw}}
    four = ["lake", "clickhouse", "cassandra", "postgres"]
    all_four = catch_up(topic, args.events, four, "local[2]", warm)
    one_core = catch_up(topic, args.events, four, "local[1]", warm)
    two = catch_up(topic, args.events, ["lake", "clickhouse"], "local[2]", warm)
    two_one_core = catch_up(topic, args.events, ["lake", "clickhouse"], "local[1]", warm)
    results = {
        "events": args.events, "raw_kafka_read_per_s": round(read),
        "raw_write_per_s": {k: round(v) for k, v in writes.items()}, "cassandra_clients": cassandra_clients,
        "all_four_local2": all_four, "all_four_local1": one_core, "clickhouse_lake_local2": two,
        "clickhouse_lake_local1": two_one_core,
        "ratio_all_four_to_read": round(all_four["per_s"] / read, 3),
        "ratio_all_four_to_slowest_write": round(all_four["per_s"] / slowest, 3),
        "scaling_local1_to_local2": round(all_four["per_s"] / one_core["per_s"], 2),
        "ratio_clickhouse_lake_to_read": round(two["per_s"] / min(read, writes["clickhouse"]), 3),
        "scaling_clickhouse_lake_local1_to_local2": round(two["per_s"] / two_one_core["per_s"], 2),
        "raw_lake_write_per_s": round(raw["lake"]["per_s"]),
        "cpu_efficiency_all_four_local2": efficiency(args.events, all_four, steps),
        "cpu_efficiency_clickhouse_lake_local2": efficiency(
            args.events, two, {k: v for k, v in steps.items() if k in ("kafka_read", "clickhouse", "lake")}),
    }
    print(f"raw Kafka read (Spark)            {read:>10,.0f} events/s")
    for store, rate in writes.items():
        print(f"raw {store:<10} write (own client) {rate:>10,.0f} rows/s")
    cassandra_clients_table(cassandra_clients)
    print(f"all four sinks, local[2]          {all_four['per_s']:>10,.0f} events/s   ratio to read "
          f"{results['ratio_all_four_to_read']:.3f}, to the slowest raw write {results['ratio_all_four_to_slowest_write']:.2f}")
    print(f"all four sinks, local[1]          {one_core['per_s']:>10,.0f} events/s   local[2] / local[1] "
          f"{results['scaling_local1_to_local2']:.2f}")
    print(f"ClickHouse + lake, local[2]       {two['per_s']:>10,.0f} events/s   ratio "
          f"{results['ratio_clickhouse_lake_to_read']:.3f}")
    print(f"ClickHouse + lake, local[1]       {two_one_core['per_s']:>10,.0f} events/s   local[2] / local[1] "
          f"{results['scaling_clickhouse_lake_local1_to_local2']:.2f}")
    print(f"raw lake write (Spark, Delta)     {raw['lake']['per_s']:>10,.0f} rows/s")
    for label, key in (("all four, local[2]", "cpu_efficiency_all_four_local2"),
                       ("ClickHouse + lake, local[2]", "cpu_efficiency_clickhouse_lake_local2")):
        e = results[key]
        print(f"CPU efficiency, {label}: {e['efficiency']} (pipeline {e['pipeline_core_s_per_1k']} busy core-s "
              f"per 1K events; raw steps {e['raw_core_s_per_1k']})")
    print(f"partition seconds (summed), all four, local[2]: {all_four['partition_seconds']}")
    for label, run in (("all four, local[2]", all_four), ("all four, local[1]", one_core),
                       ("ClickHouse + lake, local[2]", two), ("ClickHouse + lake, local[1]", two_one_core)):
        cpu = run["cpu_seconds"]
        groups = ", ".join(f"{k} {v}" for k, v in cpu.items() if k not in ("machine_busy", "available"))
        print(f"CPU seconds, {label}: {cpu['machine_busy']} busy of {cpu['available']} available; {groups}")
    if not args.skip_latency:
        results["latency"] = latency_runs(args, sinks)
    print(json.dumps(results))


if __name__ == "__main__":
    try:
        main()
    finally:  # before the interpreter exits, or the JVM's listener calls back into a dead one
        from pyspark.sql import SparkSession

        if SparkSession.getActiveSession() is not None:
            SparkSession.getActiveSession().stop()
