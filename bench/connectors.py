"""Events/s of each connector publishing Avro to the local Kafka, against a raw producer in the same run.

    python bench/connectors.py [--events N] [--only cdc,api,files]
    python bench/connectors.py --peer debezium [--events N] [--changes N] [--rate R] [--seconds S]

For each connector the baseline is a plain confluent-kafka producer (same settings: idempotent,
acks=all, lz4) sending the very records the connector published, already encoded, to a scratch
topic: what Kafka and the client cost without the connector's reading, decoding and encoding.
The ratio connector/raw says how much of the raw rate the connector keeps. Needs `make up`.

``--peer debezium`` instead runs the CDC connector beside Debezium's PostgreSQL connector on a Kafka
Connect worker, on the same table in the same run (bench/cdc_vs_debezium.py says how).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from kappa.settings import get_settings  # noqa: E402


def read_raw(topic: str, limit: int) -> list[tuple[bytes | None, bytes | None]]:
    settings = get_settings()
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False, "fetch.max.bytes": 50_000_000})
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    records, idle_since = [], time.monotonic()
    while len(records) < limit and time.monotonic() - idle_since < 5:
        batch = consumer.consume(10_000, 1.0)
        if batch:
            idle_since = time.monotonic()
        records += [(m.key(), m.value()) for m in batch if not m.error()]
    consumer.close()
    return records


def raw_rate(records: list[tuple[bytes | None, bytes | None]]) -> float:
    """Events/s of a bare idempotent producer sending already-encoded records."""
    settings = get_settings()
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 5, "batch.size": 1_000_000, "compression.type": "lz4",
                         "queue.buffering.max.messages": 500_000})
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    producer.produce(topic, value=b"warm-up")
    producer.flush(30)
    started = time.perf_counter()
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return len(records) / (time.perf_counter() - started)


def bench_cdc(events: int) -> tuple[float, list]:
    import psycopg2

    from connectors.cdc.connector import CdcConfig, CdcConnector
    from connectors.runtime import StopFlag

    settings = get_settings()
    tag = uuid.uuid4().hex[:8]
    table = f"bench_cdc_{tag}"
    conn = psycopg2.connect(settings.postgres.dsn())
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f"""CREATE TABLE public.{table} (id bigint PRIMARY KEY, status text NOT NULL, amount numeric(12,2),
                    note text, updated_at timestamptz NOT NULL DEFAULT now())""")
    config = CdcConfig(name=f"bench-{tag}", tables=[f"public.{table}"], topic_prefix=f"bench.cdc{tag}",
                       snapshot="never", commit_interval_s=1.0, heartbeat_interval_s=1.0)
    slot = config.slot_name()

    def run_until(stop: StopFlag, ready) -> threading.Thread:
        thread = threading.Thread(target=CdcConnector(config, settings, stop).run, daemon=True)
        thread.start()
        while not ready():
            if not thread.is_alive():
                raise SystemExit("the CDC connector stopped during the benchmark")
            time.sleep(0.05)
        return thread

    def confirmed() -> int:
        cur.execute("SELECT coalesce(confirmed_flush_lsn - '0/0'::pg_lsn, 0) FROM pg_replication_slots "
                    "WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
        return int(row[0]) if row else 0

    try:
        # 1. Create the slot, then stop: the changes below wait in the WAL.
        stop = StopFlag()
        thread = run_until(stop, lambda: confirmed() > 0)
        stop.set()
        thread.join(30)
        # 2. The changes: inserts in transactions of 1000 rows.
        for start in range(0, events, 1000):
            cur.execute(f"INSERT INTO public.{table} (id, status, amount, note) SELECT g, 'NEW', g * 0.5, 'bench row ' || g "
                        f"FROM generate_series(%s, %s) g", (start, min(start + 1000, events) - 1))
        cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        end = int(cur.fetchone()[0])
        # 3. Resume and time until PostgreSQL holds the confirmation of the last transaction,
        #    which the connector sends only after Kafka acknowledged every event before it.
        stop = StopFlag()
        started = time.perf_counter()
        thread = run_until(stop, lambda: confirmed() >= end)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join(30)
        return events / elapsed, read_raw(f"{config.topic_prefix}.{table}", events)
    finally:
        cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        cur.execute(f"DROP PUBLICATION IF EXISTS {config.publication_name()}")
        cur.execute(f"DROP TABLE public.{table}")
        conn.close()


def _serve_pages(pages: dict[str, bytes], port_queue) -> None:
    """A pre-rendered paginated JSON API in its own process, so serving costs the connector nothing."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def do_GET(self):  # noqa: N802
            token = parse_qs(urlsplit(self.path).query).get("page_token", [""])[0]
            body = pages[token]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def bench_api(events: int) -> tuple[float, list]:
    import multiprocessing

    from connectors.api.connector import ApiConfig, ApiConnector

    page_size, t0 = 500, 1_764_115_200_000
    records = [{"order_id": i, "customer_id": i % 97, "status": "PAID", "amount": i * 0.25, "currency": "EUR",
                "updated_at": t0 + i} for i in range(events)]
    pages = {}
    for start in range(0, events, page_size):
        token = "" if start == 0 else str(start)
        following = str(start + page_size) if start + page_size < events else None
        pages[token] = json.dumps({"data": records[start:start + page_size], "next_page_token": following}).encode()
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve_pages, args=(pages, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        tag = uuid.uuid4().hex[:8]
        config = ApiConfig(name=f"bench-api-{tag}", url=f"http://127.0.0.1:{port}/orders", topic=f"bench.api{tag}.orders",
                           contract="shop.api.orders", id_field="order_id", page_size=page_size, rate_limit_per_s=0)
        connector = ApiConnector(config, get_settings())
        started = time.perf_counter()
        published = connector.poll_once()
        elapsed = time.perf_counter() - started
        connector.producer.close()
        assert published == events, f"published {published} of {events}"
        return events / elapsed, read_raw(config.topic, events)
    finally:
        server.terminate()


def bench_files(events: int) -> tuple[float, list]:
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from connectors.files.connector import FilesConfig, FilesConnector

    with tempfile.TemporaryDirectory() as folder:
        half = events // 2
        with open(Path(folder) / "payments.csv", "w") as f:
            f.write("payment_id,order_id,amount,currency,method,paid_at\n")
            for i in range(half):
                f.write(f"p-{i},{i},{i * 0.5},EUR,card,2026-11-26T10:00:00Z\n")
        rest = events - half
        pq.write_table(pa.table({
            "payment_id": [f"q-{i}" for i in range(rest)], "order_id": pa.array(range(rest), pa.int64()),
            "amount": [i * 0.5 for i in range(rest)], "currency": ["EUR"] * rest,
            "paid_at": pa.array([1_764_158_400_000 + i for i in range(rest)], pa.timestamp("ms", tz="UTC")),
        }), Path(folder) / "payments.parquet")
        tag = uuid.uuid4().hex[:8]
        config = FilesConfig(name=f"bench-files-{tag}", topic=f"bench.files{tag}.payments", contract="shop.files.payments",
                             directory=folder, key=["payment_id"], time_field="paid_at")
        connector = FilesConnector(config, get_settings())
        started = time.perf_counter()
        connector.scan()
        elapsed = time.perf_counter() - started
        connector.producer.close()
        return events / elapsed, read_raw(config.topic, events)


BENCHES = {"cdc": bench_cdc, "api": bench_api, "files": bench_files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--peer", choices=["debezium"], help="the CDC connector beside this peer instead")
    parser.add_argument("--changes", type=int, default=100_000, help="--peer: pgbench updates of the catch-up phase")
    parser.add_argument("--rate", type=int, default=1000, help="--peer: pgbench updates/s of the latency phase")
    parser.add_argument("--seconds", type=int, default=30, help="--peer: length of the latency phase")
    args = parser.parse_args()
    if args.peer:
        from bench import cdc_vs_debezium

        report = cdc_vs_debezium.run(args.events, args.changes, args.rate, args.seconds)
        print(cdc_vs_debezium.table(report))
        print(json.dumps(report, default=vars))
        return
    results = {}
    for name in args.only.split(","):
        rate, records = BENCHES[name](args.events)
        baseline = raw_rate(records)
        results[name] = {"events": len(records), "connector_events_per_s": round(rate),
                         "raw_producer_events_per_s": round(baseline), "ratio": round(rate / baseline, 3)}
        print(f"{name:<6} {rate:>10,.0f} events/s   raw producer {baseline:>10,.0f} events/s   "
              f"ratio {rate / baseline:.3f}   ({len(records)} events)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
