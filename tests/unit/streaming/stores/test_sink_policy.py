"""The sink contract's retry policy and the one-line description of a failed batch (no servers)."""
import pyarrow as pa
import pytest

from streaming.jobs import failures
from streaming.stores.base import RetryPolicy, Sink, SinkUnavailable, WriteToken
from streaming.tables import Table

ORDERS = Table("orders", ("order_id",), (("order_id", "bigint"),))


class FlakyStore(Sink):
    name = "flaky"

    def __init__(self, failures_before_success: int, error: type[BaseException] = ConnectionError) -> None:
        super().__init__("ns")
        self.left, self.error, self.calls, self.resets = failures_before_success, error, 0, 0

    @property
    def address(self) -> str:
        return "127.0.0.1:1"

    def write(self, rows, spec, token) -> None:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise self.error("refused")

    def reset(self) -> None:
        self.resets += 1


POLICY = RetryPolicy(attempts=3, backoff_s=0.001, max_backoff_s=0.002)
TOKEN = WriteToken("orders", 7, 2)


def test_a_transient_error_is_retried_with_a_fresh_connection():
    store = FlakyStore(2)
    store.write_with_retries(pa.table({"x": [1]}), ORDERS, TOKEN, POLICY)
    assert (store.calls, store.resets) == (3, 2)


def test_spent_retries_name_the_store_its_address_the_table_batch_and_partition():
    store = FlakyStore(5)
    with pytest.raises(SinkUnavailable) as raised:
        store.write_with_retries(pa.table({"x": [1]}), ORDERS, TOKEN, POLICY)
    assert str(raised.value).startswith("flaky at 127.0.0.1:1 did not take the write of ns.orders for batch 7 "
                                        "(partition 2) after 3 attempts: ConnectionError: refused")
    assert store.calls == 3


def test_an_error_that_is_not_transient_is_not_retried():
    store = FlakyStore(1, error=ValueError)
    with pytest.raises(ValueError):
        store.write_with_retries(pa.table({"x": [1]}), ORDERS, TOKEN, POLICY)
    assert store.calls == 1


def test_tokens_differ_per_partition_and_table():
    assert WriteToken("q", 1, 0).for_table("ns.t") == "q:1:0:ns.t"
    assert WriteToken("q", 1, 1).for_table("ns.t") != WriteToken("q", 1, 0).for_table("ns.t")


def test_a_failure_is_described_by_the_sink_line_or_the_deepest_foreign_cause():
    nobody = failures.Endpoint("cassandra", "cassandra.hosts/port", "127.0.0.1", 1)  # nothing listens on port 1
    sink_failure = RuntimeError("Job aborted\nTraceback ...\nstreaming.stores.base.SinkUnavailable: cassandra at "
                                "127.0.0.1:1 did not take the write of ns.orders for batch 4 (partition 1)\n\tat org...")
    assert failures.describe(sink_failure, 4, [nobody]) == (
        "batch 4 failed: cassandra at 127.0.0.1:1 did not take the write of ns.orders for batch 4 (partition 1); "
        "not answering now: cassandra at 127.0.0.1:1 (cassandra.hosts/port)")
    jdbc_failure = RuntimeError("[STREAM_FAILED] Query terminated with exception: org.apache.spark.SparkException: "
                                "Job aborted\norg.postgresql.util.PSQLException: FATAL: shutting down\n\tat org.x")
    assert failures.describe(jdbc_failure, None, []) == \
        "the query failed: org.postgresql.util.PSQLException: FATAL: shutting down"
