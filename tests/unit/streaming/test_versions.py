"""The rules of serving versions that need no server: names, which version a rebuild writes, the
ClickHouse serving view's query."""
from __future__ import annotations

import pytest

from streaming.stores.clickhouse import view_query
from streaming.versions import Version, VersionRefused, _choose, job_name, version_namespace


def _v(number: int, state: str) -> Version:
    return Version("orders", "serving", number, state, {})


def test_a_version_has_a_namespace_every_store_accepts_and_its_own_query_name():
    assert version_namespace("serving", "orders-eu.v2", 3) == "serving__orders_eu_v2_v3"
    assert version_namespace("serving", "Orders", 2) == "serving__orders_v2"
    assert job_name("orders", 1) == "orders"  # version 1 keeps the checkpoint it always had
    assert job_name("orders", 4) == "orders__v4"
    assert _v(1, "active").home == "serving" and _v(2, "shadow").home == "serving__orders_v2"


def test_a_rebuild_writes_the_unfinished_shadow_again_else_the_next_number():
    assert _choose([], "orders", None) == 2  # the namespace as it is is version 1
    assert _choose([_v(1, "active")], "orders", None) == 2
    assert _choose([_v(1, "previous"), _v(2, "active"), _v(3, "shadow")], "orders", None) == 3
    assert _choose([_v(1, "dropped"), _v(2, "active")], "orders", None) == 3
    assert _choose([_v(1, "active"), _v(2, "shadow")], "orders", 2) == 2


@pytest.mark.parametrize("versions, number, says", [
    ([_v(1, "active")], 1, "version 1 of pipeline orders is active"),
    ([], 1, "version 1 of pipeline orders is active"),
    ([_v(1, "previous"), _v(2, "active")], 2, "is active"),
    ([_v(1, "active")], 5, "the next one is 2"),
])
def test_a_version_that_was_cut_over_or_skips_a_number_is_refused(versions, number, says):
    with pytest.raises(VersionRefused, match=says):
        _choose(versions, "orders", number)


def test_the_clickhouse_view_merges_where_the_engine_merges():
    assert view_query("v2", "t", "ReplacingMergeTree") == "SELECT * FROM `v2`.`t` FINAL"
    assert view_query("v2", "t", "ReplicatedSummingMergeTree") == "SELECT * FROM `v2`.`t` FINAL"
    assert view_query("v2", "t", "MergeTree") == "SELECT * FROM `v2`.`t`"
    assert view_query("v2", "t", "SharedMergeTree") == "SELECT * FROM `v2`.`t`"
    assert view_query("v2", "t", "View") == "SELECT * FROM `v2`.`t`"
