"""End-to-end throughput and latency of the orders job, against raw Kafka reads and raw ClickHouse inserts.

    python bench/streaming.py [--events N] [--rate R] [--seconds S]

1. Throughput: N order events (each a new key, so every sink writes every row) wait in Kafka; the
   job catches up with all four sinks, then again with ClickHouse + lake only (events / wall time
   from the job's start, its start-up included; the JVM is warm by then). In the same run:
   Spark reading the same records from Kafka (raw read) and clickhouse-connect inserting the same
   rows as Arrow (raw write). Reported: events/s and pipeline / min(raw read, raw write).
2. Latency: a producer process at a fixed R events/s for S seconds while the job runs with a 0.5 s trigger
   (sinks: ClickHouse + lake unless --latency-sinks says otherwise);
   latency = ClickHouse's ``_ingested_at`` - the event's produce time (its event_time), p50 / p95.
Needs `make up`.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
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


def job(name: str, topic: str, namespace: str, sinks: list[str], trigger: float = 0.5):
    from streaming.jobs import orders
    from streaming.jobs.runner import JobConfig, JobRunner
    from streaming.session import build_session

    config = JobConfig(name=name, topic=topic, namespace=namespace, sinks=sinks, trigger_seconds=trigger,
                       max_offsets_per_trigger=200_000, checkpoint_dir=f"/tmp/kappa-bench/{uuid.uuid4().hex}")
    return JobRunner(orders.JOB, config, get_settings(), build_session("bench"))


def catch_up(topic: str, events: int, sinks: list[str]) -> float:
    tag = uuid.uuid4().hex[:8]
    runner = job(f"bench-{tag}", topic, f"bench_{tag}", sinks)
    started = time.perf_counter()
    runner.run(available_now=True)
    return events / (time.perf_counter() - started)


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


def raw_write(topic: str, events: int) -> float:
    """The same rows, already decoded and shaped for the table, inserted into ClickHouse as Arrow."""
    import clickhouse_connect
    from pyspark.sql import functions as F

    from streaming import migrations
    from streaming.decode import Decoder
    from streaming.session import build_session
    from streaming.tables import ORDERS

    settings = get_settings()
    spark = build_session("bench")
    decoder = Decoder.from_registry(SchemaRegistryClient({"url": settings.registry.url}), topic)
    df = (spark.read.format("kafka").option("kafka.bootstrap.servers", settings.kafka.bootstrap_servers)
          .option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest").load())
    rows = (decoder.decode(df).select("_decoded.*")
            .withColumn("channel", F.lit(None).cast("string")).withColumn("customer_segment", F.lit(None).cast("string"))
            .withColumn("customer_country", F.lit(None).cast("string"))
            .withColumn("_version", F.unix_micros("updated_at")).withColumn("_deleted", F.lit(0).cast("tinyint"))
            .select(*ORDERS.all_columns).toArrow())
    namespace = f"bench_raw_{uuid.uuid4().hex[:8]}"
    migrations.clickhouse(settings, namespace)
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
    parser.add_argument("--latency-sinks", default="lake,clickhouse",
                        help="sinks of the latency run (all four cannot keep up with 10K/s on 2 cores)")
    parser.add_argument("--only-latency", action="store_true")
    args = parser.parse_args()
    if args.only_latency:
        print(json.dumps(latency(args.rate, args.seconds, args.latency_sinks.split(","))))
        return
    topic = f"bench.{uuid.uuid4().hex[:8]}.orders"
    producer = OrderProducer(topic)
    producer.send(args.events)
    producer.flush()
    raw_read(topic, args.events)  # warm-up: the first Spark job of a session pays for JIT and planning
    read = raw_read(topic, args.events)
    write = raw_write(topic, args.events)
    all_four = catch_up(topic, args.events, ["lake", "clickhouse", "cassandra", "postgres"])
    two = catch_up(topic, args.events, ["lake", "clickhouse"])
    floor = min(read, write)
    results = {
        "events": args.events,
        "raw_kafka_read_per_s": round(read), "raw_clickhouse_insert_per_s": round(write),
        "pipeline_all_four_sinks_per_s": round(all_four), "ratio_all_four": round(all_four / floor, 3),
        "pipeline_clickhouse_lake_per_s": round(two), "ratio_clickhouse_lake": round(two / floor, 3),
        "latency": latency(args.rate, args.seconds, args.latency_sinks.split(",")),
    }
    print(f"raw Kafka read (Spark)        {read:>10,.0f} events/s")
    print(f"raw ClickHouse insert (Arrow) {write:>10,.0f} events/s")
    print(f"pipeline, all four sinks      {all_four:>10,.0f} events/s   ratio {all_four / floor:.3f}")
    print(f"pipeline, ClickHouse + lake   {two:>10,.0f} events/s   ratio {two / floor:.3f}")
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
