"""ClickHouse over HTTP with clickhouse-connect: ReplacingMergeTree, FINAL, two writers at once."""
import multiprocessing

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError


def connect(ch):
    return clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username,
                                         password=ch.password, secure=ch.secure)


def _writer(ch, table: str, worker: int, rounds: int, queue) -> None:
    """Each worker owns half the keys and raises their version every round, reading as it goes."""
    try:
        client = connect(ch)
        keys = range(worker, 200, 2)
        seen = 0
        for version in range(1, rounds + 1):
            client.insert(table, [[k, f"w{worker}v{version}", version] for k in keys],
                          column_names=["id", "payload", "version"])
            seen = client.query(f"SELECT count() FROM {table} FINAL").result_rows[0][0]
        queue.put((worker, seen, None))
    except Exception as exc:  # report to the parent instead of dying silently
        queue.put((worker, -1, repr(exc)))


def test_replacing_merge_tree_from_two_processes(clickhouse_settings, unique):
    client = connect(clickhouse_settings)
    table = f"default.it_orders_{unique}"
    client.command(
        f"CREATE TABLE {table} (id UInt64, payload String, version UInt64) "
        "ENGINE = ReplacingMergeTree(version) ORDER BY id"
    )
    try:
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        workers = [ctx.Process(target=_writer, args=(clickhouse_settings, table, w, 5, queue)) for w in (0, 1)]
        for p in workers:
            p.start()
        results = [queue.get(timeout=120) for _ in workers]
        for p in workers:
            p.join(60)
        assert [r[2] for r in results] == [None, None], results
        rows = client.query(f"SELECT id, payload, version FROM {table} FINAL ORDER BY id").result_rows
        assert len(rows) == 200
        assert all(version == 5 and payload == f"w{id_ % 2}v5" for id_, payload, version in rows)
        # Without FINAL the replaced versions are still in unmerged parts: FINAL is what collapses them.
        raw = client.query(f"SELECT count() FROM {table}").result_rows[0][0]
        assert raw >= 200
    finally:
        client.command(f"DROP TABLE IF EXISTS {table}")


def test_insert_deduplication_token_makes_a_retried_batch_a_no_op(clickhouse_settings, unique):
    client = connect(clickhouse_settings)
    table = f"default.it_dedup_{unique}"
    client.command(
        f"CREATE TABLE {table} (id UInt64, version UInt64) ENGINE = ReplacingMergeTree(version) "
        "ORDER BY id SETTINGS non_replicated_deduplication_window = 1000"
    )
    try:
        rows = [[i, 1] for i in range(100)]
        for _ in range(3):  # a batch written, then replayed twice after a crash
            client.insert(table, rows, column_names=["id", "version"],
                          settings={"insert_deduplication_token": f"query-1:batch-7:{table}"})
        assert client.query(f"SELECT count() FROM {table}").result_rows[0][0] == 100
    finally:
        client.command(f"DROP TABLE IF EXISTS {table}")


def test_arrow_in_and_out_and_errors(clickhouse_settings, unique):
    import pyarrow as pa

    client = connect(clickhouse_settings)
    table = f"default.it_arrow_{unique}"
    client.command(f"CREATE TABLE {table} (id UInt64, name String, amount Nullable(Float64)) ENGINE = MergeTree ORDER BY id")
    try:
        data = pa.table({"id": pa.array(range(1000), pa.uint64()),
                         "name": [f"n{i}" for i in range(1000)],
                         "amount": [None if i % 10 == 0 else i / 2 for i in range(1000)]})
        client.insert_arrow(table, data)
        back = client.query_arrow(f"SELECT * FROM {table} ORDER BY id")
        assert back.num_rows == 1000 and back.column("amount").null_count == 100
        assert client.query("SELECT {n:UInt32} * 2", parameters={"n": 21}).result_rows == [(42,)]
        text = "orders-1f2e it's a \\ path"  # not an identifier, with a quote and a backslash
        assert client.query("SELECT {s:String}", parameters={"s": text}).result_rows == [(text,)]
        with pytest.raises(DatabaseError) as missing:
            client.query(f"SELECT * FROM {table}_missing")
        assert "UNKNOWN_TABLE" in str(missing.value) or "code: 60" in str(missing.value)
    finally:
        client.command(f"DROP TABLE IF EXISTS {table}")


def test_raw_http_protocol_formats_compression_and_errors(clickhouse_settings, unique):
    """What clients other than clickhouse-connect send: SQL in the body, data formats, encodings."""
    import gzip
    import struct

    import lz4.frame
    import requests
    from backports import zstd

    url = f"http://{clickhouse_settings.host}:{clickhouse_settings.port}/"
    table = f"default.it_raw_{unique}"
    assert requests.get(url + "ping", timeout=5).text == "Ok.\n"
    assert requests.post(url, data=f"CREATE TABLE {table} (id UInt32, name String) ENGINE = MergeTree ORDER BY id",
                         timeout=10).status_code == 200
    try:
        # TSV with the statement in the body, gzip-compressed.
        body = gzip.compress(f"INSERT INTO {table} FORMAT TabSeparated\n1\tone\n2\ttwo\n".encode())
        r = requests.post(url, data=body, headers={"Content-Encoding": "gzip"}, timeout=10)
        assert r.status_code == 200, r.text
        # RowBinary with the statement in the URL, lz4-compressed.
        rows = b"".join(struct.pack("<I", i) + bytes([len(n)]) + n.encode() for i, n in ((3, "three"), (4, "four")))
        r = requests.post(url, params={"query": f"INSERT INTO {table} (id, name) FORMAT RowBinary"},
                          data=lz4.frame.compress(rows), headers={"Content-Encoding": "lz4"}, timeout=10)
        assert r.status_code == 200, r.text
        # A compressed result in the requested format, with ClickHouse's headers.
        r = requests.get(url, params={"query": f"SELECT id, name FROM {table} ORDER BY id",
                                      "default_format": "CSV", "enable_http_compression": "1"},
                         headers={"Accept-Encoding": "zstd"}, timeout=10, stream=True)
        assert r.headers["Content-Encoding"] == "zstd" and r.headers["X-ClickHouse-Format"] == "CSV"
        assert zstd.decompress(r.raw.read(decode_content=False)).decode() == '1,"one"\n2,"two"\n3,"three"\n4,"four"\n'
        assert "read_rows" in r.headers["X-ClickHouse-Summary"]
        # Settings in the URL apply to that query only.
        r = requests.get(url, params={"query": "SELECT getSetting('max_threads')", "max_threads": "3"}, timeout=10)
        assert r.text.strip() == "3"
        assert requests.get(url, params={"query": "SELECT getSetting('max_threads')"}, timeout=10).text.strip() != "3"
        # Errors the way ClickHouse reports them; GET is read-only.
        r = requests.post(url, data="SELEC 1", timeout=10)
        assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "62"
        assert r.text.startswith("Code: 62. DB::Exception:")
        r = requests.get(url, params={"query": f"DROP TABLE {table}"}, timeout=10)
        assert r.status_code == 500 and r.headers["X-ClickHouse-Exception-Code"] == "164"
        r = requests.post(url, data="SELECT 1", auth=("intruder", "x"), timeout=10)
        assert r.status_code == 401 and r.headers["X-ClickHouse-Exception-Code"] == "516"
    finally:
        requests.post(url, data=f"DROP TABLE IF EXISTS {table}", timeout=10)
