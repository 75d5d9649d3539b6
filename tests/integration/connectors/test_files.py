"""The file connector: a directory and an S3 prefix, CSV / JSON Lines / Parquet, DLQ, manifest, Lambda."""
import io
import signal
from urllib.parse import quote_plus

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import urllib3
from minio import Minio

from connectors.files.sources import S3Prefix, SourceUnavailable
from kappa.errors import Refused
from tests.conftest import free_port, write_toml
from tests.integration.kafka_topics import read_topic, wait_for

CSV = """payment_id,order_id,amount,currency,method,paid_at
p-1,1,10.50,EUR,card,2026-11-26T10:00:00Z
p-2,2,abc,EUR,card,2026-11-26T10:01:00Z
p-3,3,7.25,USD,,2026-11-26T10:02:00Z
p-4,4,3.00,EUR,transfer,2026-11-26T10:03:00Z,unexpected
"""
JSONL = """{"payment_id": "p-10", "order_id": 10, "amount": 1.5, "paid_at": "2026-11-26T11:00:00Z"}
{"payment_id": "p-11", "order_id": 11, "amount": 2.5, "method": "card", "paid_at": 1764154860000}
{"payment_id": "p-12", "order_id": 12, "amount": 3.5, "paid_at": "2026-11-26T11:02:00+00:00"
"""


def parquet_bytes(first: int, count: int) -> bytes:
    table = pa.table({
        "payment_id": [f"p-{i}" for i in range(first, first + count)],
        "order_id": pa.array(range(first, first + count), pa.int64()),
        "amount": [i * 0.5 for i in range(first, first + count)],
        "currency": ["EUR"] * count,
        "paid_at": pa.array([1_764_158_400_000 + i for i in range(count)], pa.timestamp("ms", tz="UTC")),
    })
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


@pytest.fixture
def s3(s3_settings, unique):
    client = Minio(s3_settings.endpoint, access_key=s3_settings.access_key, secret_key=s3_settings.secret_key,
                   secure=s3_settings.secure)
    bucket = f"it-files-{unique}"
    client.make_bucket(bucket)
    yield client, bucket
    for obj in client.list_objects(bucket, recursive=True):
        client.remove_object(bucket, obj.object_name)
    client.remove_bucket(bucket)


def put(client, bucket, key, data: bytes):
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def events(bootstrap, registry_url, topic):
    return [r["value"] for r in read_topic(bootstrap, registry_url, topic, committed_only=True) if r["value"]]


def scans(proc) -> int:
    return proc.log_path.read_text().count('"scan complete"')


def test_directory_and_s3_prefix_each_row_once_malformed_rows_in_dlq(
        s3, tmp_path, kafka_bootstrap, registry_url, run_connector, unique):
    client, bucket = s3
    inbox = tmp_path / "inbox"
    (inbox / "2026-11-26").mkdir(parents=True)
    (inbox / "2026-11-26" / "payments-1.csv").write_text(CSV)
    (inbox / "payments-2.jsonl").write_text(JSONL)
    (inbox / "notes.txt").write_text("not a data file")
    put(client, bucket, "incoming/payments-3.parquet", parquet_bytes(100, 6))
    put(client, bucket, "incoming/sub/payments-4.csv", CSV.replace("p-", "q-").encode())
    put(client, bucket, "elsewhere/payments-5.csv", CSV.encode())  # outside the prefix
    topic = f"it.{unique}.files.payments"
    config = {"name": f"files-{unique}", "topic": topic, "contract": "shop.files.payments", "directory": str(inbox),
              "s3_bucket": bucket, "s3_prefix": "incoming/", "key": ["payment_id"], "time_field": "paid_at",
              "poll_interval_s": 0.3}

    first = run_connector("files", config, log_name="first.log")
    valid = 2 + 2 + 6 + 2       # p-1, p-3 / p-10, p-11 / six Parquet rows / q-1, q-3
    got = wait_for(lambda: (e := events(kafka_bootstrap, registry_url, topic)) and len(e) >= valid and e, 60,
                   f"{valid} events")
    wait_for(lambda: scans(first) >= 2, 30, "a second scan")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0

    assert sorted(e["payment_id"] for e in got) == sorted(
        ["p-1", "p-3", "p-10", "p-11", "q-1", "q-3"] + [f"p-{i}" for i in range(100, 106)])
    by_id = {e["payment_id"]: e for e in got}
    assert by_id["p-3"]["method"] is None and by_id["p-3"]["currency"] == "USD"
    assert by_id["p-10"]["currency"] == "EUR"          # the contract's default
    assert by_id["p-11"]["paid_at"].timestamp() == 1_764_154_860
    assert by_id["p-1"]["source"]["position"].endswith("/2026-11-26/payments-1.csv:2")
    assert by_id["p-102"]["source"]["position"] == f"s3://{bucket}/incoming/payments-3.parquet:3"
    assert len({e["event_id"] for e in got}) == len(got)

    dead = [r for r in read_topic(kafka_bootstrap, registry_url, f"{topic}.dlq", decode=False, committed_only=True)]
    reasons = {r["headers"]["source.position"].decode().rsplit("/", 1)[-1]: r["headers"]["error"].decode() for r in dead}
    assert set(reasons) == {"payments-1.csv:3", "payments-1.csv:5", "payments-2.jsonl:3", "payments-4.csv:3",
                            "payments-4.csv:5"}
    assert "amount" in reasons["payments-1.csv:3"]
    assert "malformed CSV row: 7 fields, the header has 6" in reasons["payments-1.csv:5"]
    assert "malformed JSON line" in reasons["payments-2.jsonl:3"]

    # Restarted: nothing is republished; a new file (and a changed one) are.
    second = run_connector("files", config, log_name="second.log")
    wait_for(lambda: scans(second) >= 2, 30, "two scans after the restart")
    assert len(events(kafka_bootstrap, registry_url, topic)) == len(got)
    (inbox / "payments-6.jsonl").write_text('{"payment_id": "p-60", "order_id": 60, "amount": 6, "paid_at": 1764154860000}\n')
    (inbox / "payments-2.jsonl").write_text(JSONL.replace("p-12", "p-13").rsplit("\n", 2)[0] + "\n")
    wait_for(lambda: len(events(kafka_bootstrap, registry_url, topic)) >= len(got) + 3, 30, "the new file")
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    seen = {e["event_id"] for e in got}
    after = events(kafka_bootstrap, registry_url, topic)
    new = [e["payment_id"] for e in after if e["event_id"] not in seen]
    assert new == ["p-60"]
    # The changed file is a new version, published again; its unchanged rows keep their ids.
    assert sorted(e["payment_id"] for e in after).count("p-10") == 2
    assert len({e["event_id"] for e in after if e["payment_id"] in ("p-10", "p-11")}) == 2


def test_lambda_handler_publishes_an_s3_object_once_and_shares_the_manifest(
        s3, tmp_path, kafka_bootstrap, registry_url, run_connector, unique, monkeypatch):
    from connectors.files import lambda_handler

    client, bucket = s3
    key = "drop zone/payments 7.parquet"
    put(client, bucket, key, parquet_bytes(700, 4))
    topic = f"it.{unique}.files.lambda"
    config = {"name": f"lambda-{unique}", "topic": topic, "contract": "shop.files.payments", "s3_bucket": bucket,
              "s3_prefix": "drop zone/", "key": ["payment_id"], "time_field": "paid_at", "poll_interval_s": 0.3}
    config_path = tmp_path / "files.toml"
    write_toml(config_path, config)
    monkeypatch.setenv("KAPPA_FILES__CONFIG", str(config_path))
    monkeypatch.setattr(lambda_handler, "_connector", None)
    stat = client.stat_object(bucket, key)
    # A notification as S3 sends it (event version 2.1): keys are URL-encoded, spaces as '+'.
    notification = {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-26T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:EXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "kappa-files",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key), "size": stat.size, "eTag": stat.etag.strip('"'),
                          "sequencer": "0055AED6DCD90281E5"}}}]}

    first = lambda_handler.handler(notification, None)
    assert first["published"] == [f"s3://{bucket}/{key}"]
    assert len(events(kafka_bootstrap, registry_url, topic)) == 4
    again = lambda_handler.handler(notification, None)
    assert again["published"] == [] and again["skipped"][0]["why"] == "already in the manifest"

    # The watcher over the same prefix shares the manifest: it publishes nothing for that object.
    watcher = run_connector("files", config)
    wait_for(lambda: scans(watcher) >= 2, 30, "two scans of the watcher")
    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(30) == 0
    assert sorted(e["payment_id"] for e in events(kafka_bootstrap, registry_url, topic)) == [f"p-{i}" for i in range(700, 704)]
    lambda_handler._connector.producer.close()


def test_s3_errors_arrive_as_the_platforms_a_missing_bucket_refused_a_dead_server_unavailable(s3, s3_settings):
    """The connector retries an S3 it cannot reach at its next scan, and stops on a bucket that does
    not exist: the minio client's exceptions are translated once, where the client is called."""
    client, _bucket = s3
    missing = S3Prefix(client, "no-such-bucket-kappa", "", ["*"], s3_settings.endpoint)
    with pytest.raises(Refused, match="bucket no-such-bucket-kappa .config 's3_bucket'. does not exist"):
        list(missing.list())
    dead = f"127.0.0.1:{free_port()}"
    nobody = Minio(dead, access_key="x", secret_key="y", secure=False, region="us-east-1",
                   http_client=urllib3.PoolManager(retries=urllib3.Retry(total=0)))
    with pytest.raises(SourceUnavailable, match=f"S3 at {dead} did not answer listing s3://landing/in/"):
        list(S3Prefix(nobody, "landing", "in/", ["*"], dead).list())
