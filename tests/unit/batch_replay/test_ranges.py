"""A replay's range: bounds parsed, cut into chunks in offset order, identified the same way every time."""
from datetime import datetime, timezone

import pytest

from batch_replay.ranges import PartitionRange, ReplayRange, ReplayRefused, offsets_json, parse_bound


def test_bounds_are_times_names_or_offsets():
    assert parse_bound("2026-12-01") == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert parse_bound("2026-12-01T10:00:00+01:00").utcoffset().total_seconds() == 3600
    assert parse_bound("earliest") == "earliest" and parse_bound("latest") == "latest"
    assert parse_bound("0:120,1:98") == {0: 120, 1: 98}
    with pytest.raises(ReplayRefused, match="is not a time"):
        parse_bound("yesterday")


def test_chunks_are_bounded_ordered_and_name_every_partition():
    span = ReplayRange("t", (PartitionRange(0, 10, 35), PartitionRange(1, 0, 4), PartitionRange(2, 7, 7)))
    chunks = span.chunks(10)
    assert all(sum(p.count for p in chunk) <= 10 for chunk in chunks)
    assert all([p.partition for p in chunk] == [0, 1, 2] for chunk in chunks)
    for partition in (0, 1):  # each partition's slices follow each other and cover its range exactly
        slices = [next(p for p in chunk if p.partition == partition) for chunk in chunks]
        assert slices[0].start == span.partitions[partition].start
        assert all(a.end == b.start for a, b in zip(slices, slices[1:]))
        assert slices[-1].end == span.partitions[partition].end
    assert sum(p.count for chunk in chunks for p in chunk) == span.events == 29
    assert offsets_json("t", chunks[0], end=False) == '{"t": {"0": 10, "1": 0, "2": 7}}'
    assert ReplayRange("t", (PartitionRange(0, 5, 5),)).chunks(10) == []


def test_the_same_range_chunking_and_partitioning_give_the_same_id():
    span = ReplayRange("t", (PartitionRange(0, 0, 100),))
    assert span.identity(10, 2) == ReplayRange("t", (PartitionRange(0, 0, 100),)).identity(10, 2)
    assert len({span.identity(10, 2), span.identity(20, 2), span.identity(10, 4),
                ReplayRange("t", (PartitionRange(0, 0, 101),)).identity(10, 2)}) == 4
