"""End-to-end throughput and latency of the orders job, against raw reads and writes of the same data.

    python bench/streaming.py [--events N] [--rate R] [--seconds S]

1. Baselines, in the same run: Spark reading the N records from Kafka (raw read, best of three);
   each store's own client writing the same rows at its best concurrency from two processes (the
   machine's cores): clickhouse-connect Arrow inserts, cassandra-driver prepared statements in
   replica-grouped unlogged batches, psycopg2 COPY + upsert (raw writes).
2. Throughput: N order events (each a new key, so every sink writes every row) wait in Kafka; the
   job catches up with all four sinks on ``local[2]`` and on ``local[1]``, then with ClickHouse +
   lake on ``local[2]`` and on ``local[1]`` (the same scaling without Cassandra's server taking the
   second core). Each catch-up is a fresh job process (``--catch-up``) that first catches up
   on a 50K-event warm-up topic, so the JVM is warm; events / wall time from the job's start.
3. Latency: a producer process at a fixed R events/s for S seconds while the job runs with a 0.5 s
   trigger (sinks: all four unless --latency-sinks says otherwise); latency = ClickHouse's
   ``_ingested_at`` - the event's produce time (its event_time), p50 / p95 / p99.
Reported: events/s and ratios to the raw Kafka read and to the slowest raw sink write, and the CPU
seconds the machine and Cassandra's server used during each catch-up. Needs `make up`.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402

from schemas import contracts  # noqa: E402
from schemas.serde import AvroSerializer  # noqa: E402
from settings import get_settings  # noqa: E402


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


def job(name: str, topic: str, namespace: str, sinks: list[str], trigger: float = 0.5):
    from streaming.jobs.runner import JobRunner
    from streaming.session import build_session

    orders = orders_pipeline(name, topic, namespace, sinks=sinks, trigger_seconds=trigger,
                             max_offsets_per_trigger=200_000, checkpoint_dir=f"/tmp/kappa-bench/{uuid.uuid4().hex}")
    return JobRunner(orders.definition(), orders, get_settings(), build_session("bench"))


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
    import logging

    from streaming.jobs import runner as runner_module

    timings: dict[str, float] = {}

    class Stages(logging.Handler):
        def emit(self, record):  # the job's per-batch line carries the summed partition seconds
            if record.msg.startswith("batch %d:"):
                for stage, seconds in record.args[-1].items():
                    timings[stage] = timings.get(stage, 0.0) + seconds

    logging.basicConfig(level=logging.WARNING)  # a failing or restarting job says why on stderr
    if warm_up:
        tag = uuid.uuid4().hex[:8]
        job(f"bench-warm-{tag}", warm_up, f"bench_warm_{tag}", sinks).run(available_now=True)
    runner_module.log.addHandler(Stages())
    runner_module.log.setLevel(logging.INFO)
    tag = uuid.uuid4().hex[:8]
    runner = job(f"bench-{tag}", topic, f"bench_{tag}", sinks)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    runner.run(available_now=True)
    elapsed = time.perf_counter() - started
    cpu = {k: round(v - cpu_before[k], 1) for k, v in cpu_seconds().items()}
    return {"per_s": events / elapsed, "seconds": round(elapsed, 1),
            "partition_seconds": {k: round(v, 1) for k, v in timings.items()},
            "cpu_seconds": {**cpu, "available": round(elapsed * (os.cpu_count() or 1), 1)}}


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the whole machine (busy, all cores) and by Cassandra's server: what
    tells a catch-up bound by the cores from one bound by waiting, and who had the cores."""
    from stack import lifecycle

    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy
    ticks = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    used = {"machine_busy": (sum(ticks) - ticks[3] - ticks[4]) / tick}
    # The pid file alone: status() would also run Cassandra's health check on every call.
    pid = next(s for s in lifecycle.services(["cassandra"]) if s.name == "cassandra").pid()
    if pid is not None:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used["cassandra_server"] = (int(stat[11]) + int(stat[12])) / tick  # utime, stime
    return used


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
    from streaming.jobs.runner import serving_table
    from streaming.session import build_session

    orders = orders_pipeline("bench", topic, f"bench_shape_{uuid.uuid4().hex[:8]}")
    return serving_table(orders.definition(), orders, get_settings(), build_session("bench"))


def _raw_store_write(store: str, namespace: str, start: int, count: int, concurrency: int, table) -> float:
    """One process's share of a raw write (its own process: the clients are Python)."""
    from streaming.sinks.base import WriteToken
    from streaming.sinks.cassandra import CassandraSink
    from streaming.sinks.postgres import PostgresSink

    settings = get_settings()
    rows = _orders_rows(start + count).slice(start, count)
    sink = CassandraSink(settings, namespace, concurrency=concurrency) if store == "cassandra" else \
        PostgresSink(settings, namespace)
    sink.write(rows.slice(0, 100), table, WriteToken("raw", 0, start))  # connect, prepare
    started = time.perf_counter()
    for offset in range(0, count, 50_000):
        sink.write(rows.slice(offset, 50_000), table, WriteToken("raw", 1, start + offset))
    elapsed = time.perf_counter() - started
    sink.close()
    return elapsed


def raw_store_write(store: str, rows: int, table) -> float:
    """Rows/s of ``store``'s own client from two processes, at its best concurrency among a few."""
    from concurrent.futures import ProcessPoolExecutor

    from streaming.tables import ddl

    settings = get_settings()
    best = 0.0
    for concurrency in ((16, 48, 128) if store == "cassandra" else (1,)):
        namespace = f"bench_raw_{uuid.uuid4().hex[:8]}"
        ddl.ENSURE[store](settings, namespace, table, "bench")
        half = rows // 2
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            started = time.perf_counter()
            list(pool.map(_raw_store_write, [store, store], [namespace, namespace], [0, half], [half, half],
                          [concurrency, concurrency], [table, table]))
            best = max(best, rows / (time.perf_counter() - started))
    return best


def raw_read(topic: str, events: int) -> float:
    from pyspark.sql import functions as F

    from streaming.session import build_session

    spark = build_session("bench")
    settings = get_settings()
    started = time.perf_counter()
    df = (spark.read.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
          .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest").load())
    total = df.agg(F.count("*"), F.sum(F.length("value"))).collect()[0]
    assert total[0] >= events
    return events / (time.perf_counter() - started)


def raw_write(topic: str, events: int, table) -> float:
    """The same rows, already decoded and shaped for the table, inserted into ClickHouse as Arrow."""
    import clickhouse_connect
    from pyspark.sql import functions as F

    from streaming.decode import Decoder
    from streaming.session import build_session
    from streaming.tables import ddl

    settings = get_settings()
    spark = build_session("bench")
    decoder = Decoder.from_registry(SchemaRegistryClient({"url": settings.registry.url}), topic)
    df = (spark.read.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
          .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest").load())
    rows = (decoder.decode(df).select("_decoded.*")
            .withColumn("customer_segment", F.lit(None).cast("string"))
            .withColumn("customer_country", F.lit(None).cast("string"))
            .withColumn("_version", F.unix_micros("updated_at")).withColumn("_deleted", F.lit(0).cast("tinyint"))
            .select(*table.all_columns).toArrow())
    namespace = f"bench_raw_{uuid.uuid4().hex[:8]}"
    ddl.clickhouse(settings, namespace, table, "bench")
    ch = settings.clickhouse
    client = clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password)
    chunk = 200_000
    started = time.perf_counter()
    for start in range(0, rows.num_rows, chunk):
        client.insert_arrow(f"{namespace}.orders", rows.slice(start, chunk))
    return rows.num_rows / (time.perf_counter() - started)


def produce_at_rate(topic: str, rate: int, seconds: int) -> None:
    """R events/s for S seconds, in tenths of a second (run in its own process, like a connector)."""
    producer = OrderProducer(topic, create=False, first_id=1)  # order 0 started the job
    started = time.perf_counter()
    for tick in range(seconds * 10):
        producer.send(rate // 10)
        delay = started + (tick + 1) / 10 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    producer.flush()


def latency(rate: int, seconds: int, sinks: list[str]) -> dict:
    import clickhouse_connect

    tag = uuid.uuid4().hex[:8]
    topic, namespace = f"bench.{tag}.latency", f"bench_lat_{tag}"
    producer = OrderProducer(topic)
    producer.send(1)  # the topic's schema exists before the job starts
    producer.flush()
    runner = job(f"bench-lat-{tag}", topic, namespace, sinks)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    settings = get_settings()
    ch = clickhouse_connect.get_client(host=settings.clickhouse.host, port=settings.clickhouse.port)

    def visible() -> int:
        try:
            return ch.query(f"SELECT count() FROM {namespace}.orders").result_rows[0][0]
        except Exception:
            return 0

    while visible() < 1:
        time.sleep(0.2)
    # A separate process: the producer's Python must not compete with the job's driver for the GIL.
    feeder = multiprocessing.get_context("spawn").Process(target=produce_at_rate, args=(topic, rate, seconds))
    feeder.start()
    feeder.join()
    if feeder.exitcode != 0:
        raise RuntimeError(f"the producer process failed (exit code {feeder.exitcode})")
    produced = 1 + rate // 10 * seconds * 10
    deadline = time.monotonic() + 120
    while visible() < produced and time.monotonic() < deadline:
        time.sleep(0.2)
    runner.stop()
    thread.join(60)
    p50, p95, p99 = ch.query(
        "SELECT quantiles(0.5, 0.95, 0.99)(toUnixTimestamp64Milli(_ingested_at) - toUnixTimestamp64Milli(event_time)) "
        f"FROM {namespace}.orders WHERE order_id > 0").result_rows[0][0]
    return {"rate": rate, "seconds": seconds, "sinks": sinks, "visible": visible(), "produced": produced,
            "p50_ms": round(p50), "p95_ms": round(p95), "p99_ms": round(p99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--latency-sinks", default="lake,clickhouse,cassandra,postgres",
                        help="sinks of the latency run (and of a --catch-up)")
    parser.add_argument("--raw-rows", type=int, default=200_000, help="rows of each raw store write")
    parser.add_argument("--only-latency", action="store_true")
    parser.add_argument("--catch-up", metavar="TOPIC", help=argparse.SUPPRESS)  # one catch-up, in this process
    parser.add_argument("--warm-up", metavar="TOPIC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sinks = args.latency_sinks.split(",")
    if args.catch_up:
        print(json.dumps(_catch_up_here(args.catch_up, args.events, sinks, args.warm_up)))
        return
    if args.only_latency:
        print(json.dumps(latency(args.rate, args.seconds, sinks)))
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
    read = max(raw_read(topic, args.events) for _ in range(3))
    table = orders_table(topic)
    writes = {"clickhouse": raw_write(topic, args.events, table),
              "cassandra": raw_store_write("cassandra", args.raw_rows, table),
              "postgres": raw_store_write("postgres", args.raw_rows, table)}
    slowest = min(writes.values())
    four = ["lake", "clickhouse", "cassandra", "postgres"]
    all_four = catch_up(topic, args.events, four, "local[2]", warm)
    one_core = catch_up(topic, args.events, four, "local[1]", warm)
    two = catch_up(topic, args.events, ["lake", "clickhouse"], "local[2]", warm)
    two_one_core = catch_up(topic, args.events, ["lake", "clickhouse"], "local[1]", warm)
    results = {
        "events": args.events, "raw_kafka_read_per_s": round(read),
        "raw_write_per_s": {k: round(v) for k, v in writes.items()},
        "all_four_local2": all_four, "all_four_local1": one_core, "clickhouse_lake_local2": two,
        "clickhouse_lake_local1": two_one_core,
        "ratio_all_four_to_read": round(all_four["per_s"] / read, 3),
        "ratio_all_four_to_slowest_write": round(all_four["per_s"] / slowest, 3),
        "scaling_local1_to_local2": round(all_four["per_s"] / one_core["per_s"], 2),
        "ratio_clickhouse_lake_to_read": round(two["per_s"] / min(read, writes["clickhouse"]), 3),
        "scaling_clickhouse_lake_local1_to_local2": round(two["per_s"] / two_one_core["per_s"], 2),
        "latency": latency(args.rate, args.seconds, sinks),
    }
    print(f"raw Kafka read (Spark)            {read:>10,.0f} events/s")
    for store, rate in writes.items():
        print(f"raw {store:<10} write (own client) {rate:>10,.0f} rows/s")
    print(f"all four sinks, local[2]          {all_four['per_s']:>10,.0f} events/s   ratio to read "
          f"{results['ratio_all_four_to_read']:.3f}, to the slowest raw write {results['ratio_all_four_to_slowest_write']:.2f}")
    print(f"all four sinks, local[1]          {one_core['per_s']:>10,.0f} events/s   local[2] / local[1] "
          f"{results['scaling_local1_to_local2']:.2f}")
    print(f"ClickHouse + lake, local[2]       {two['per_s']:>10,.0f} events/s   ratio "
          f"{results['ratio_clickhouse_lake_to_read']:.3f}")
    print(f"ClickHouse + lake, local[1]       {two_one_core['per_s']:>10,.0f} events/s   local[2] / local[1] "
          f"{results['scaling_clickhouse_lake_local1_to_local2']:.2f}")
    print(f"partition seconds (summed), all four, local[2]: {all_four['partition_seconds']}")
    for label, run in (("all four, local[2]", all_four), ("all four, local[1]", one_core),
                       ("ClickHouse + lake, local[2]", two), ("ClickHouse + lake, local[1]", two_one_core)):
        cpu = run["cpu_seconds"]
        print(f"CPU seconds, {label}: {cpu['machine_busy']} busy of {cpu['available']} available, "
              f"Cassandra's server {cpu.get('cassandra_server', '?')}")
    lat = results["latency"]
    print(f"latency into {'+'.join(lat['sinks'])} at {lat['rate']:,}/s for {lat['seconds']}s: p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, "
          f"p99 {lat['p99_ms']} ms ({lat['visible']}/{lat['produced']} visible)")
    print(json.dumps(results))


if __name__ == "__main__":
    try:
        main()
    finally:  # before the interpreter exits, or the JVM's listener calls back into a dead one
        from pyspark.sql import SparkSession

        if SparkSession.getActiveSession() is not None:
            SparkSession.getActiveSession().stop()
