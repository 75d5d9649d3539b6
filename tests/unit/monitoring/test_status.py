"""``kappa status``'s table: one line per pipeline, a failed measurement says why on its line."""
from monitoring.status import PipelineStatus, table


def test_the_table_shows_each_pipeline_and_why_one_was_not_measured():
    statuses = [PipelineStatus("orders", "orders_v2", 2, "'kappa job orders_v2', since 2026-12-07", 12, 3.25, 41,
                               1_000.0),
                PipelineStatus("customers", "customers", 1, None, 0, 0.0, None, None),
                PipelineStatus("tickets", problem="topic shop.api.tickets of job tickets does not exist in Kafka")]
    lines = table(statuses, now=1_090.0).splitlines()
    assert lines[0].split() == ["PIPELINE", "QUERY", "VERSION", "RUNNING", "LAG", "EVENTS", "LAG", "LAST", "BATCH"]
    assert lines[1].split() == ["orders", "orders_v2", "2", "yes", "12", "3.2s", "#41,", "1.5m", "ago"]
    assert lines[2].split() == ["customers", "customers", "1", "no", "0", "0.0s", "none", "yet"]
    assert lines[3].endswith("not measured: topic shop.api.tickets of job tickets does not exist in Kafka")
    assert lines[0].index("LAST BATCH") == lines[1].index("#41") == lines[2].index("none yet")  # columns align
