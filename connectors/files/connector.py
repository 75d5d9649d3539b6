"""Publish each row of new files in a directory and/or an S3 prefix as an Avro event, each file once.

The manifest (in the connector's position store) holds, per file URI, the identity it was
published with (size and checksum/ETag) and how many rows are done. A file's rows and its
manifest entry commit in one Kafka transaction (every ``rows_per_transaction`` rows for large
files), so a restart, even after SIGKILL, neither republishes nor skips a row, and a file whose
content changes is published again as a new version.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from minio import Minio

from connectors import metrics
from connectors.checkpoints import CheckpointStore
from connectors.files.readers import BadRow, rows
from connectors.files.sources import FileRef, LocalDirectory, S3Prefix
from connectors.producer import EventProducer
from connectors.records import InvalidRecord, RecordMapper, epoch_ms, event_id
from connectors.runtime import ConnectorConfig, StopFlag
from schemas import contracts
from settings import Settings

log = logging.getLogger(__name__)


class FilesConfig(ConnectorConfig):
    topic: str
    contract: str | None = None          # schemas/avro/<contract>.avsc; default: the topic
    directory: str | None = None         # a local folder, watched recursively
    s3_bucket: str | None = None         # and/or an S3 bucket + prefix (the settings' S3 endpoint)
    s3_prefix: str = ""
    patterns: list[str] = ["*.csv", "*.jsonl", "*.ndjson", "*.json", "*.parquet"]
    key_field: str
    time_field: str
    field_map: dict[str, str] = {}
    poll_interval_s: float = 5.0
    rows_per_transaction: int = 50_000


class FilesConnector:
    def __init__(self, config: FilesConfig, settings: Settings, stop: StopFlag | None = None,
                 transactional_id: str | None = None) -> None:
        if not config.directory and not config.s3_bucket:
            raise SystemExit(f"connector {config.name}: set 'directory' and/or 's3_bucket' in its config")
        self.config = config
        self.settings = settings
        self.stop = stop or StopFlag()
        contract = contracts.contract(config.contract or config.topic)
        self.mapper = RecordMapper(json.loads(contract.schema), config.field_map)
        self.producer = EventProducer(settings, config.name, transactional=True, transactional_id=transactional_id)
        self.manifest = CheckpointStore(settings, config.name)
        self.producer.ensure_topics([config.topic])
        self.serialize = self.producer.serializer(config.topic, contract.schema)
        self.serialize_key = self.producer.serializer(config.topic, '"string"', is_key=True)
        self.s3 = Minio(settings.s3.endpoint, access_key=settings.s3.access_key, secret_key=settings.s3.secret_key,
                        secure=settings.s3.secure, region=settings.s3.region)
        self.sources: list[LocalDirectory | S3Prefix] = []
        if config.directory:
            self.sources.append(LocalDirectory(Path(config.directory), config.patterns))
        if config.s3_bucket:
            self.sources.append(S3Prefix(self.s3, config.s3_bucket, config.s3_prefix, config.patterns))

    @staticmethod
    def _item(ref: FileRef) -> str:
        return f"file:{ref.uri}"

    def status(self, ref: FileRef) -> tuple[bool, int]:
        """(already fully published, rows already published) of this file version."""
        entry = self.manifest.get(self._item(ref))
        if not entry or entry["size"] != ref.size or entry["checksum"] != ref.checksum:
            return False, 0
        return entry["complete"], entry["last_row"]

    def scan(self) -> int:
        """Publish every new or changed file of every source; returns the number of files published."""
        self.manifest.refresh()  # entries the Lambda path committed meanwhile
        published = 0
        for source in self.sources:
            for ref in source.list():
                if self.stop.is_set():
                    return published
                if self.publish(source, ref):
                    published += 1
        return published

    def publish(self, source: LocalDirectory | S3Prefix, ref: FileRef) -> bool:
        """Publish one file version unless the manifest has it; True if rows were published now."""
        complete, done = self.status(ref)
        if complete:
            return False
        started = time.perf_counter()
        count = dead = 0
        with source.open(ref) as path:
            for line, row in rows(path, ref.format):
                if line <= done and done:
                    continue  # committed before a crash, in an earlier transaction of this file
                dead += self._publish_row(ref, line, row)
                count += 1
                if count % self.config.rows_per_transaction == 0:
                    self._commit(ref, line, complete=False)
                    self.producer.poll()
                    if self.stop.is_set():
                        return True
        self._commit(ref, line if count else done, complete=True)
        metrics.BATCH_SECONDS.labels(self.config.name).observe(time.perf_counter() - started)
        log.info("file published", extra={"uri": ref.uri, "rows": count, "dead_letters": dead, "resumed_after": done})
        return True

    def _commit(self, ref: FileRef, rows_done: int, complete: bool) -> None:
        self.producer.commit(self.manifest, {self._item(ref): {
            "size": ref.size, "checksum": ref.checksum, "last_row": rows_done, "complete": complete,
            "published_at_ms": int(time.time() * 1000)}})

    def _publish_row(self, ref: FileRef, line: int, row) -> int:
        position = f"{ref.uri}:{line}"
        if isinstance(row, BadRow):
            self.producer.dead_letter(self.config.topic, row.raw, row.reason, position)
            return 1
        try:
            entity = self.mapper.entity(row)
            when = epoch_ms(row[self.config.time_field])
        except (InvalidRecord, KeyError, ValueError, TypeError) as exc:
            self.producer.dead_letter(self.config.topic, json.dumps(row, default=str), f"invalid row: {exc}", position)
            return 1
        event = {
            "event_id": event_id("file", ref.uri, ref.size, ref.checksum, line),
            "event_time": when,
            "source": {"connector": self.config.name, "position": position, "ts_ms": int(time.time() * 1000)},
            **entity,
        }
        key = row.get(self.config.key_field)
        self.producer.send(self.config.topic, None if key is None else self.serialize_key(str(key)), self.serialize(event))
        return 0

    def run(self) -> None:
        log.info("watching", extra={"directory": self.config.directory, "s3_bucket": self.config.s3_bucket,
                                    "s3_prefix": self.config.s3_prefix})
        try:
            while not self.stop.is_set():
                published = self.scan()
                log.info("scan complete", extra={"files_published": published})
                self.stop.wait(self.config.poll_interval_s)
        finally:
            self.producer.close()
