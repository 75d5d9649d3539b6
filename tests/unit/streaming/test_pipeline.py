"""Pipeline files: what they may say, and the transform they make (on the shared local SparkSession)."""
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from streaming import pipelines
from streaming.jobs import pipeline
from streaming.plan import BatchContext, JobConfig

UTC = timezone.utc
EVENTS = ("event_id string, event_time timestamp, order_id bigint, customer_id bigint, status string, "
          "amount double, currency string, updated_at timestamp")
AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_the_platforms_pipelines_load():
    orders = pipeline.load(pipelines.path("orders"))
    job = orders.definition()
    assert (job.table, job.key, orders.topic, job.extra.__name__) == ("orders", ("order_id",), "shop.api.orders", "extra")
    assert list(job.reference) == ["customers"] and job.hold == ()
    customers = pipeline.load(pipelines.path("customers"), namespace="elsewhere")
    assert (customers.definition().table, customers.namespace) == ("customers", "elsewhere")


def test_a_misspelt_setting_is_refused_with_its_name(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\ntopic = "a.b.c"\nkey = ["id"]\n[validate]\nrequird = ["id"]\n')
    with pytest.raises(ValidationError, match="requird"):
        pipeline.load(path)


def test_declared_steps_normalise_validate_join_and_version_the_rows(spark, settings, tmp_path):
    (tmp_path / "extra.sql").write_text("SELECT e.*, upper(e.customer_segment) AS segment_code FROM {events} e")
    (tmp_path / "p.toml").write_text("""
name = "p"
topic = "it.p.orders"
key = ["order_id"]
version = "updated_at"
sql = "extra.sql"
[normalise]
upper = ["currency"]
[validate]
required = ["order_id"]
range = { amount = [0, 100] }
enum = { status = ["NEW", "PAID"] }
regex = { currency = "^[A-Z]{3}$" }
[reference.customers]
postgres = "customers_current"
join = ["customer_id"]
columns = { segment = "customer_segment" }
on_missing = "dlq"
""")
    p = pipeline.load(tmp_path / "p.toml")
    rows = spark.createDataFrame([
        ("e1", AT, 1, 7, "NEW", 5.0, " eur ", AT), ("e2", AT, 2, 8, "NEW", 5.0, "EUR", AT),
        ("e3", AT, 3, 7, "LOST", 5.0, "EUR", AT), ("e4", AT, 4, 7, "NEW", 500.0, "EUR", AT),
        ("e5", AT, None, 7, "NEW", 5.0, "EURO", AT)], EVENTS)
    customers = spark.createDataFrame([(7, "gold", "GB")], "customer_id bigint, segment string, country string")
    ctx = BatchContext(spark, settings, JobConfig(name="p", topic=p.topic), reference={"customers": customers})
    out = {r.event_id: r for r in p.definition().transform(rows, ctx).collect()}
    assert (out["e1"].currency, out["e1"].customer_segment, out["e1"].segment_code, out["e1"]._error) == (
        "EUR", "gold", "GOLD", None)
    assert out["e1"]._version == int(AT.timestamp() * 1_000_000) and out["e1"]._deleted is False
    assert out["e2"]._error == "no match in reference customers (customers_current) for customer_id"
    assert out["e3"]._error == "rule failed: status in ['NEW', 'PAID']"
    assert out["e4"]._error == "rule failed: amount in 0..100"
    assert out["e5"]._error == "rule failed: order_id is required"  # the first rule it breaks
