"""Where a streaming query is, read from its checkpoint: the Kafka offsets its last completed batch
ended at.

Spark's Kafka source commits nothing to Kafka, so a process outside the query (the Kappa rebuild
waiting for its shadow job to catch up; a lag exporter) reads the checkpoint, which is where the
query itself resumes from, whether it runs or not. Spark writes ``offsets/<batch>`` before a batch
(``v1``, the batch's metadata, then one JSON line per source: ``{"topic": {"partition": end}}``)
and ``commits/<batch>`` after it; the newest batch with both is the position.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from kappa.settings import Settings


def committed(settings: Settings, location: str) -> dict[str, dict[int, int]]:
    """``{topic: {partition: next offset}}`` after the query's last completed batch; empty before
    its first (or when there is no checkpoint at ``location``, a folder or ``s3a://bucket/prefix``)."""
    files = _files(settings, location)
    batch = _newest(files)
    if batch is None:
        return {}
    lines = files.read(f"offsets/{batch}").splitlines()
    position: dict[str, dict[int, int]] = {}
    for line in lines[2:]:  # after the version and the batch metadata: one line per source
        if line.strip().startswith("{"):
            for topic, ends in json.loads(line).items():
                position.setdefault(topic, {}).update({int(p): int(o) for p, o in ends.items()})
    return position


def last_batch(settings: Settings, location: str) -> tuple[int, float] | None:
    """(id, end time in epoch seconds) of the query's newest completed batch; None before its first."""
    files = _files(settings, location)
    batch = _newest(files)
    return None if batch is None else (batch, files.modified(f"commits/{batch}"))


def _files(settings: Settings, location: str):
    return _S3(settings, location) if location.startswith("s3a://") else _Local(location)


def _newest(files) -> int | None:
    done = {int(n) for n in files.names("commits") if n.isdigit()}
    started = {int(n) for n in files.names("offsets") if n.isdigit()}
    return max(done & started, default=None)


class _Local:
    def __init__(self, location: str) -> None:
        self.root = Path(urlparse(location).path if location.startswith("file:") else location)

    def names(self, folder: str) -> list[str]:
        path = self.root / folder
        return [p.name for p in path.iterdir()] if path.is_dir() else []

    def read(self, name: str) -> str:
        return (self.root / name).read_text()

    def modified(self, name: str) -> float:
        return (self.root / name).stat().st_mtime


class _S3:
    def __init__(self, settings: Settings, location: str) -> None:
        from streaming.stores import lake

        self.client = lake.client(settings)
        self.bucket, _, prefix = location.removeprefix("s3a://").partition("/")
        self.prefix = prefix.strip("/")

    def names(self, folder: str) -> list[str]:
        prefix = f"{self.prefix}/{folder}/"
        return [o.object_name[len(prefix):] for o in self.client.list_objects(self.bucket, prefix=prefix)]

    def read(self, name: str) -> str:
        response = self.client.get_object(self.bucket, f"{self.prefix}/{name}")
        try:
            return response.read().decode()
        finally:
            response.close()
            response.release_conn()

    def modified(self, name: str) -> float:
        return self.client.stat_object(self.bucket, f"{self.prefix}/{name}").last_modified.timestamp()
