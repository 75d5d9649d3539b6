"""Batch replay throughput for 1x, 2x and 4x the same range, next to the live job catching up on it.

    python bench/backfill.py [--events N]

One topic (4 partitions) holds 4N order events, each a new key. In one process and one warm
SparkSession (a small replay and a small live run first):
1. Baseline: the live orders job (``JobRunner``, available-now) catches up on all 4N events with
   the serving sinks (ClickHouse, Cassandra, PostgreSQL: what a live replay writes).
2. Replays of about N, 2N and 4N of the same events (``batch_replay.replay``, the first offsets of
   each partition; 4x is the whole topic), each into a fresh namespace, with the same sinks.
Reported: events/s of each, replay(4x) / live on the same events (target >= 2), and
time(4x) / time(1x) per event count (linear: 4x the range within 4.6x the time), and how busy the
machine's cores were during the live run and the 4x replay (Cassandra's server's share apart).
Needs `make up`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cpu import cpu_seconds, cpu_used  # noqa: E402
from bench.streaming import OrderProducer, orders_pipeline  # noqa: E402
from kappa.settings import get_settings  # noqa: E402

SINKS = ["clickhouse", "cassandra", "postgres"]


def _live(spark, topic: str, events: int) -> float:
    from streaming.jobs.runner import JobRunner

    tag = uuid.uuid4().hex[:8]
    pipeline = orders_pipeline(f"bench-live-{tag}", topic, f"bench_live_{tag}", sinks=SINKS,
                               max_offsets_per_trigger=events, checkpoint_dir=f"/tmp/kappa-bench/{tag}")
    started = time.perf_counter()
    JobRunner(pipeline.definition(), pipeline, get_settings(), spark).run(available_now=True)
    return time.perf_counter() - started


def _replay(spark, topic: str, per_partition: int | None, partitions: int) -> tuple[float, int]:
    """(seconds, records) of a replay of the first ``per_partition`` offsets of each partition (None: all)."""
    from batch_replay import ranges
    from batch_replay.replay import Plan, replay

    tag = uuid.uuid4().hex[:8]
    pipeline = orders_pipeline(f"bench-replay-{tag}", topic, f"bench_replay_{tag}", sinks=SINKS)
    settings = get_settings()
    end = "latest" if per_partition is None else {p: per_partition for p in range(partitions)}
    span = ranges.resolve(settings, topic, "earliest", end)
    plan = Plan(pipeline, span, 200_000, spark.sparkContext.defaultParallelism, tuple(SINKS))
    started = time.perf_counter()
    replay(plan, settings, spark)
    return time.perf_counter() - started, span.events


def _busy(before: dict, seconds: float) -> dict[str, float]:
    used = cpu_used(before)
    cores = seconds * (os.cpu_count() or 1)
    return {"busy": round(used["machine_busy"] / cores, 2),
            "cassandra_server": round(used.get("cassandra", 0.0) / cores, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="N: the 1x range (default 50000)")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    from streaming.session import build_session

    partitions, n = 4, args.events - args.events % 4
    tag = uuid.uuid4().hex[:8]
    topic, warm = f"bench.backfill.{tag}", f"bench.backfill.warm.{tag}"
    for name, count in ((warm, 8_000), (topic, 4 * n)):
        producer = OrderProducer(name)
        producer.send(count)
        producer.flush()
    spark = build_session("bench-backfill")
    spark.sparkContext.setLogLevel("ERROR")
    _replay(spark, warm, 1_000, partitions)  # warm the JVM on both paths
    _live(spark, warm, 8_000)
    before = cpu_seconds()
    live = _live(spark, topic, 4 * n)
    live_busy = _busy(before, live)
    runs = {k: _replay(spark, topic, None if k == 4 else k * n // partitions, partitions) for k in (1, 2)}
    before = cpu_seconds()
    runs[4] = _replay(spark, topic, None, partitions)
    replay_busy = _busy(before, runs[4][0])
    rate = {k: events / seconds for k, (seconds, events) in runs.items()}
    report = {"events_4x": runs[4][1], "live_per_s": round(4 * n / live),
              **{f"replay_{k}x_per_s": round(r) for k, r in rate.items()},
              **{f"replay_{k}x_events": runs[k][1] for k in (1, 2)},
              "replay_4x_over_live": round(rate[4] / (4 * n / live), 2),
              # the 4x range's time over the 1x range's, for exactly 4x the events: <= 4.6 is linear
              "time_4x_over_1x": round(4 * rate[1] / rate[4], 2),
              # the share of the machine's cores busy (every process, the servers too; near 1 is
              # CPU-bound) and of them Cassandra's server's, during the live run and the 4x replay
              "live_cpu": live_busy, "replay_4x_cpu": replay_busy}
    print(json.dumps(report))
    spark.stop()


if __name__ == "__main__":
    main()
