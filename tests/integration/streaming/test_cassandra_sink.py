"""The Cassandra sink (acsylla) against the stack's Cassandra: what its client does not do for it.

Every type's round trip through every store is in test_serving_tables.py; here: timestamps to the
millisecond on both sides of 1970 (acsylla takes seconds as a float), the version guard of upserts
and deletes, and the routing keys and ring that group a partition's rows by the node owning them.
"""
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from streaming.stores.base import WriteToken
from streaming.stores.cassandra import CassandraSink, CassandraStore, Ring, connect, routing_key, _serializer
from streaming.tables import Table

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MOMENTS = Table("moments", ("id",), (("id", "bigint"), ("site", "string"), ("at", "timestamp")))
# Milliseconds from 1970: either side of it, on it, and ones whose float of seconds is not exact.
MILLIS = [-62_135_596_800_000, -1_088_635_755_245, -1001, -1, 0, 1, 999, 1_088_635_755_245, 2_177_259_650_910,
          1_796_685_944_931, 253_402_300_799_999]


def _rows(ids, versions, deleted, sites=None, millis=None) -> pa.Table:
    count = len(ids)
    moments = [EPOCH + timedelta(milliseconds=m) for m in (millis or [0] * count)]
    return pa.table({"id": pa.array(ids, pa.int64()), "site": pa.array(sites or ["eu"] * count),
                     "at": pa.array(moments, pa.timestamp("us", "UTC")), "_version": pa.array(versions, pa.int64()),
                     "_deleted": pa.array(deleted)})


def test_timestamps_keep_their_millisecond_and_the_newest_version_wins(settings, unique):
    namespace = f"cass_{unique}"
    CassandraStore().ensure_table(settings, namespace, MOMENTS, "moments-job")
    sink = CassandraSink(settings, namespace)
    ids = list(range(len(MILLIS)))
    sink.write(_rows(ids, [10] * len(ids), [False] * len(ids), millis=MILLIS), MOMENTS, WriteToken("m", 0, 0))
    # Older versions of row 0 (an upsert and a delete) change nothing; a newer delete removes row 1.
    sink.write(_rows([0, 0, 1], [5, 6, 11], [False, True, True], sites=["old", "old", "old"]), MOMENTS,
               WriteToken("m", 1, 0))
    sink.close()
    cluster, session = connect(settings)
    try:
        found = {r.id: (r.site, r.ms) for r in session.execute(
            f"SELECT id, site, blobAsBigint(timestampAsBlob(at)) AS ms FROM {namespace}.moments")}
    finally:
        cluster.shutdown()
    assert found == {i: ("eu", m) for i, m in enumerate(MILLIS) if i != 1}


def test_routing_keys_and_the_ring_agree_with_the_server(settings, unique):
    """A key's bytes as cassandra-driver routes its own statements, the owner as the ring says."""
    namespace = f"cass_{unique}"
    table = Table("pairs", ("site", "n"), (("site", "string"), ("n", "bigint"), ("v", "int")))
    CassandraStore().ensure_table(settings, namespace, table, "pairs-job")
    cluster, session = connect(settings)
    try:
        prepared = session.prepare(f'SELECT * FROM {namespace}.pairs WHERE "site" = ? AND "n" = ?')
        composite = routing_key([_serializer("string"), _serializer("bigint")])
        single = routing_key([_serializer("bigint")])
        for site, n in (("eu", 1), ("", -5), ("ü" * 40, 2**62)):
            assert composite((site, n)) == prepared.bind((site, n)).routing_key
            assert single((n,)) == n.to_bytes(8, "big", signed=True)
        # Which token owns a key: the first at or after its hash, wrapping around the ring.
        token_map = cluster.metadata.token_map
        ring = Ring({t.value: str(host.address) for t, host in token_map.token_to_host_owner.items()})
        for n in range(50):
            key = composite(("eu", n))
            assert ring.owner(key) == str(token_map.get_replicas(namespace, token_map.token_class.from_key(key))[0]
                                          .address)
    finally:
        cluster.shutdown()


def test_a_partition_is_sent_in_batches_each_owned_by_one_node(settings):
    """On a ring of three nodes, every batch's rows belong to one node, and no row is lost."""
    sink = CassandraSink(settings, "unused", batch_partitions=10)
    sink._ring = Ring({-6_000_000_000_000_000_000: "a", -1: "b", 3_000_000_000_000_000_000: "c",
                       8_000_000_000_000_000_000: "a"})
    ids = list(range(1000))
    rows = _rows(ids, ids, [False] * len(ids))
    key = routing_key([_serializer("bigint")])
    batches = sink._by_owner(ids, rows, MOMENTS, key)
    assert sorted(i for batch in batches for i in batch) == ids
    assert all(len(batch) <= 10 for batch in batches)
    owners = [{sink._ring.owner(key((i,))) for i in batch} for batch in batches]
    assert all(len(o) == 1 for o in owners) and set().union(*owners) == {"a", "b", "c"}
