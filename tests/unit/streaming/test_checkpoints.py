"""A query's position from its checkpoint folder, laid out as Spark writes it (the integration test
of the Kappa rebuild reads real ones)."""
from __future__ import annotations

import json

from kappa.settings import Settings
from streaming import checkpoints


def _batch(root, n: int, offsets: dict, committed: bool) -> None:
    (root / "offsets").mkdir(exist_ok=True)
    (root / "commits").mkdir(exist_ok=True)
    (root / "offsets" / str(n)).write_text(f'v1\n{{"batchWatermarkMs":0,"batchTimestampMs":1}}\n{json.dumps(offsets)}')
    if committed:
        (root / "commits" / str(n)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_the_position_is_the_end_of_the_newest_committed_batch(tmp_path):
    settings = Settings()
    assert checkpoints.committed(settings, str(tmp_path / "never-ran")) == {}
    _batch(tmp_path, 0, {"t": {"0": 10, "1": 4}}, committed=True)
    _batch(tmp_path, 1, {"t": {"0": 25, "1": 9}}, committed=True)
    _batch(tmp_path, 2, {"t": {"0": 40, "1": 9}}, committed=False)  # planned, not done: not the position
    (tmp_path / "offsets" / ".2.crc").write_text("")  # Hadoop's checksum files sit beside them
    assert checkpoints.committed(settings, str(tmp_path)) == {"t": {0: 25, 1: 9}}
    assert checkpoints.committed(settings, f"file://{tmp_path}") == {"t": {0: 25, 1: 9}}
