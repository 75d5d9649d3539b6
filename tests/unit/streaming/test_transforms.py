"""The pure transforms, on the shared local SparkSession."""
from datetime import datetime, timezone

import pyarrow as pa
from pyspark.sql import Row

from streaming.listener import MetricsListener, offsets_behind
from streaming.transforms import changes, dedupe, features, normalise
from streaming.transforms.validate import Rule, check

UTC = timezone.utc


def test_validation_names_the_first_broken_rule(spark):
    df = spark.createDataFrame([(1, 5.0, "EUR"), (2, -1.0, "EUR"), (None, 1.0, "USD"), (4, 1.0, "euro")],
                               "id bigint, amount double, currency string")
    rules = [*Rule.required("id"), Rule.between("amount", 0, 100), Rule.matches("currency", "^[A-Z]{3}$"),
             Rule.one_of("currency", ["EUR", "USD"])]
    assert {r.id: r._error for r in check(df, rules).collect()} == {
        1: None, 2: "rule failed: amount in 0..100", None: "rule failed: id is required",
        4: "rule failed: currency matches ^[A-Z]{3}$"}


def test_normalisation(spark):
    df = spark.createDataFrame([(" a ", "eur", "t"), ("", "usd", "t")], "name string, currency string, topic string")
    out = normalise.upper_codes(normalise.trim_strings(df), "currency").collect()
    assert [(r.name, r.currency) for r in out] == [("a", "EUR"), (None, "USD")]
    assert normalise.trim_strings(spark.createDataFrame([(" x ",)], "topic string")).first().topic == " x "


def test_envelopes_fold_to_the_latest_row_per_key(spark):
    row = "struct<id: bigint, name: string>"
    source = "struct<lsn: bigint, snapshot: string>"
    df = spark.createDataFrame([
        (None, Row(id=1, name="a"), "r", Row(lsn=100, snapshot="true"), "e1", datetime(2026, 11, 26, tzinfo=UTC)),
        (None, Row(id=1, name="b"), "u", Row(lsn=100, snapshot="false"), "e2", datetime(2026, 11, 26, tzinfo=UTC)),
        (None, Row(id=2, name="c"), "c", Row(lsn=120, snapshot="false"), "e3", datetime(2026, 11, 26, tzinfo=UTC)),
        (Row(id=2, name=None), None, "d", Row(lsn=130, snapshot="false"), "e4", datetime(2026, 11, 26, tzinfo=UTC)),
    ], f"before {row}, after {row}, op string, source {source}, event_id string, event_time timestamp")
    rows = changes.from_envelope(df)
    assert set(rows.columns) >= {"id", "name", "_version", "_deleted", "event_id"}
    latest = {r.id: r for r in changes.latest_per_key(rows, ["id"]).collect()}
    assert latest[1].name == "b" and latest[1]._version == 201  # streamed beats the snapshot at the same LSN
    assert latest[2]._deleted and latest[2]._version == 261
    arrow = changes.latest_per_key_arrow(rows.drop("event_time").toArrow(), ["id"], ["event_id"])
    assert sorted(arrow.to_pylist(), key=lambda r: r["id"]) == [
        {k: v for k, v in latest[key].asDict().items() if k != "event_time"} for key in (1, 2)]


def test_dedupe_on_a_static_frame_drops_every_duplicate(spark):
    df = spark.createDataFrame([("a", 1), ("a", 2), ("b", 3)], "event_id string, n int")
    assert dedupe.within_watermark(df, "event_id", "ts", "10 minutes").count() == 2


def test_hourly_features_in_spark_and_in_arrow_agree(spark):
    rows = [(1, 2.0, datetime(2026, 11, 26, 9, 5, tzinfo=UTC)), (1, 3.0, datetime(2026, 11, 26, 9, 55, tzinfo=UTC)),
            (1, 4.0, datetime(2026, 11, 26, 10, 1, tzinfo=UTC)), (2, 1.0, datetime(2026, 11, 26, 9, 0, tzinfo=UTC))]
    df = spark.createDataFrame(rows, "customer_id bigint, amount double, event_time timestamp")
    in_spark = sorted((r.customer_id, r.window_start.replace(tzinfo=UTC) if r.window_start.tzinfo is None
                       else r.window_start, r.events, r.amount)
                      for r in features.windowed_totals(df, "customer_id", "amount", "event_time").collect())
    table = pa.table({"customer_id": [r[0] for r in rows], "amount": [r[1] for r in rows],
                      "event_time": pa.array([r[2] for r in rows], pa.timestamp("us", "UTC"))})
    in_arrow = sorted((r["customer_id"], r["window_start"], r["events"], r["amount"])
                      for r in features.hourly_totals_arrow(table, "customer_id", "amount", "event_time").to_pylist())
    assert in_arrow == in_spark == [
        (1, datetime(2026, 11, 26, 9, tzinfo=UTC), 2, 5.0), (1, datetime(2026, 11, 26, 10, tzinfo=UTC), 1, 4.0),
        (2, datetime(2026, 11, 26, 9, tzinfo=UTC), 1, 1.0)]


def test_offsets_behind_latest():
    assert offsets_behind('{"t": {"0": 5, "1": 7}}', '{"t": {"0": 9, "1": 7}}') == {("t", "0"): 4, ("t", "1"): 0}
    assert offsets_behind(None, {"t": {"0": 3}}) == {("t", "0"): 3}


def test_listener_records_a_progress_document_with_undefined_rates():
    from prometheus_client import REGISTRY

    # The first batch of a query has no input rate: Spark leaves the field out of the JSON.
    MetricsListener().record({"id": "q-id", "name": "unit-q", "batchId": 0, "batchDuration": 1500,
                              "numInputRows": 12, "processedRowsPerSecond": 8.0,
                              "sources": [{"endOffset": {"t": {"0": 10}}, "latestOffset": {"t": {"0": 15}},
                                           "numInputRows": 12}]})
    sample = lambda name, **labels: REGISTRY.get_sample_value(name, {"pipeline": "unit-q", **labels})  # noqa: E731
    assert sample("kappa_streaming_batch_duration_seconds_sum") == 1.5
    assert sample("kappa_streaming_input_rows_per_second") == 0.0
    assert sample("kappa_streaming_input_rows_total", topic="t") == 12
    assert sample("kappa_streaming_offsets_behind_latest", topic="t", partition="0") == 5


def test_arrow_fold_keeps_the_newest_change_per_key_in_arrival_order():
    import random

    rng = random.Random(3)
    for trial in range(200):
        n = rng.randrange(1, 40)
        rows = [{"a": rng.randrange(4), "b": rng.choice("xyz"), "_version": rng.randrange(5),
                 "event_id": f"e{rng.randrange(100)}", "n": i} for i in range(n)]
        table = pa.Table.from_pylist(rows)
        if trial % 2:  # several chunks, as a collected batch has
            table = pa.concat_tables([table.slice(0, n // 2), table.slice(n // 2)])
        for keys in (["a"], ["a", "b"]):
            newest = {}
            for row in rows:
                key = tuple(row[k] for k in keys)
                if key not in newest or (row["_version"], row["event_id"]) > (newest[key]["_version"], newest[key]["event_id"]):
                    newest[key] = row
            got = changes.latest_per_key_arrow(table, keys, ["event_id"]).to_pylist()
            assert [r["n"] for r in got] == sorted(r["n"] for r in got)  # arrival order kept
            rank = lambda r: (tuple(r[k] for k in keys), r["_version"], r["event_id"])  # noqa: E731
            assert sorted(map(rank, got)) == sorted(map(rank, newest.values())), (trial, keys)
