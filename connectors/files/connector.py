"""Publish each row of new files in a directory and/or an S3 prefix as an Avro event, each file once.

The manifest (in the connector's position store) holds, per file URI, the identity it was
published with (size and checksum/ETag), the SHA-256 of the content it published, and how many
rows are done. A file's rows and its manifest entry commit in one Kafka transaction (every
``rows_per_transaction`` rows for large files), so a restart, even after SIGKILL, neither
republishes nor skips a row. A file that grew by appended rows (its old content is its prefix)
publishes only the new rows; a file whose content changed otherwise is published again as a new
version. A row's ``event_id`` is its file, position and content, so republishing identical rows
never makes new ids downstream.
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
from connectors.files.sources import FileRef, LocalDirectory, S3Prefix, SourceUnavailable, sha256
from connectors.producer import EventProducer
from connectors.records import InvalidRecord, RecordMapper, epoch_ms, event_id, namespace_for
from connectors.runtime import ConnectorConfig, StopFlag
from schemas import contracts
from kappa.errors import Refused
from kappa.settings import Settings

log = logging.getLogger(__name__)
APPENDABLE = {"csv", "jsonl"}  # formats where new rows are appended lines (a Parquet file is rewritten whole)


def key_schema(contract: contracts.Contract, key: list[str]) -> str:
    """The Kafka key's Avro schema: a record of the key fields, typed as in the contract (not null)."""
    fields = {f["name"]: f for f in contract.fields}
    missing = [k for k in key if k not in fields]
    if missing:
        raise Refused(f"key fields {missing} (config 'key') are not fields of contract {contract.path}")

    def required(avro_type):
        return next(t for t in avro_type if t != "null") if isinstance(avro_type, list) else avro_type

    return json.dumps({"type": "record", "name": "Key", "namespace": namespace_for(contract.topic),
                       "doc": f"Key of {contract.topic}: the fields that identify a row.",
                       "fields": [{"name": k, "type": required(fields[k]["type"]), "doc": f"Key field {k}."}
                                  for k in key]})


class FilesConfig(ConnectorConfig):
    topic: str
    contract: str | None = None          # schemas/avro/<contract>.avsc, or a path to an .avsc; default: the topic
    directory: str | None = None         # a local folder, watched recursively
    s3_bucket: str | None = None         # and/or an S3 bucket + prefix (the settings' S3 endpoint)
    s3_prefix: str = ""
    patterns: list[str] = ["*.csv", "*.jsonl", "*.ndjson", "*.json", "*.parquet"]
    key: list[str]                       # the columns that identify a row: the Kafka key (a record of them)
    # The event time column; without one, event_time is the ingest time: when the file (version)
    # landed, its modification time (LastModified on S3).
    time_field: str | None = None
    field_map: dict[str, str] = {}
    poll_interval_s: float = 5.0
    rows_per_transaction: int = 50_000


class FilesConnector:
    def __init__(self, config: FilesConfig, settings: Settings, stop: StopFlag | None = None,
                 transactional_id: str | None = None) -> None:
        if not config.directory and not config.s3_bucket:
            raise Refused(f"connector {config.name}: set 'directory' and/or 's3_bucket' in its config")
        self.config = config
        self.settings = settings
        self.stop = stop or StopFlag()
        contract = (contracts.from_file(Path(config.contract), config.topic) if str(config.contract).endswith(".avsc")
                    else contracts.contract(config.contract or config.topic))
        self.mapper = RecordMapper(json.loads(contract.schema), config.field_map)
        self.producer = EventProducer(settings, config.name, transactional=True, transactional_id=transactional_id)
        self.manifest = CheckpointStore(settings, config.name)
        self.producer.ensure_topics([config.topic])
        self.serialize = self.producer.serializer(config.topic, contract.schema)
        self.serialize_key = self.producer.serializer(config.topic, key_schema(contract, config.key), is_key=True)
        self.s3 = Minio(settings.s3.endpoint, access_key=settings.s3.access_key, secret_key=settings.s3.secret_key,
                        secure=settings.s3.secure, region=settings.s3.region)
        self._backlog = metrics.LAG.labels(config.name, "files")
        self._last_event_time = metrics.LAST_EVENT_TIME.labels(config.name)
        self._newest_event_ms = 0  # event_time of the newest row produced
        metrics.SOURCE_ERRORS.labels(config.name, "s3")  # at 0 from the start: increase() sees the first
        self.sources: list[LocalDirectory | S3Prefix] = []
        if config.directory:
            self.sources.append(LocalDirectory(Path(config.directory), config.patterns))
        if config.s3_bucket:
            self.sources.append(S3Prefix(self.s3, config.s3_bucket, config.s3_prefix, config.patterns,
                                         settings.s3.endpoint))

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
        waiting = [(source, ref) for source in self.sources for ref in source.list() if not self.status(ref)[0]]
        self._backlog.set(len(waiting))
        published = 0
        for source, ref in waiting:
            if self.stop.is_set():
                return published
            if self.publish(source, ref):
                published += 1
            self._backlog.dec()
        return published

    def publish(self, source: LocalDirectory | S3Prefix, ref: FileRef) -> bool:
        """Publish one file version unless the manifest has it; True if rows were published now."""
        complete, done = self.status(ref)
        if complete:
            return False
        started = time.perf_counter()
        count = dead = 0
        with source.open(ref) as path:
            content = sha256(path)
            if not done:
                done = self._appended_after(ref, path)
            for line, row in rows(path, ref.format):
                if line <= done and done:
                    continue  # committed before a crash, in an earlier transaction of this file
                dead += self._publish_row(ref, line, row)
                count += 1
                if count % self.config.rows_per_transaction == 0:
                    self._commit(ref, content, line, complete=False)
                    self.producer.poll()
                    if self.stop.is_set():
                        return True
        self._commit(ref, content, line if count else done, complete=True)
        metrics.BATCH_SECONDS.labels(self.config.name).observe(time.perf_counter() - started)
        log.info("file published", extra={"uri": ref.uri, "rows": count, "dead_letters": dead, "resumed_after": done})
        return True

    def _appended_after(self, ref: FileRef, path: Path) -> int:
        """The rows of an earlier version of this file that ``path`` still holds unchanged, when the
        file only grew by appended rows (0 otherwise: it is a new version, published whole)."""
        entry = self.manifest.get(self._item(ref))
        if not entry or ref.format not in APPENDABLE or "content_sha256" not in entry or entry["size"] >= ref.size:
            return 0
        with open(path, "rb") as f:
            f.seek(entry["size"] - 1)
            ends_a_line = f.read(1) == b"\n"  # else the old last row may have grown, not a new row
        if not ends_a_line or sha256(path, entry["size"]) != entry["content_sha256"]:
            return 0
        log.info("file grew by appended rows", extra={"uri": ref.uri, "published_through_line": entry["last_row"]})
        return entry["last_row"]

    def _commit(self, ref: FileRef, content: str, rows_done: int, complete: bool) -> None:
        self.producer.commit(self.manifest, {self._item(ref): {
            "size": ref.size, "checksum": ref.checksum, "content_sha256": content, "last_row": rows_done,
            "complete": complete, "published_at_ms": int(time.time() * 1000)}})
        if self._newest_event_ms:
            self._last_event_time.set(self._newest_event_ms / 1000)

    def _publish_row(self, ref: FileRef, line: int, row) -> int:
        position = f"{ref.uri}:{line}"
        if isinstance(row, BadRow):
            self.producer.dead_letter(self.config.topic, row.raw, row.reason, position)
            return 1
        try:
            entity = self.mapper.entity(row)
            when = epoch_ms(row[self.config.time_field]) if self.config.time_field else ref.modified_ms
            missing = [k for k in self.config.key if entity.get(k) is None]
            if missing:
                raise InvalidRecord(f"key fields {missing} (config 'key') are empty")
        except (InvalidRecord, KeyError, ValueError, TypeError) as exc:
            self.producer.dead_letter(self.config.topic, json.dumps(row, default=str), f"invalid row: {exc}", position)
            return 1
        event = {
            # The row's place and content: the same row republished (a file rewritten, a manifest
            # lost) keeps its id, and a changed row gets a new one.
            "event_id": event_id("file", ref.uri, line, json.dumps(entity, sort_keys=True, default=str)),
            "event_time": when,
            "source": {"connector": self.config.name, "position": position, "ts_ms": int(time.time() * 1000)},
            **entity,
        }
        key = self.serialize_key({k: entity[k] for k in self.config.key})
        self.producer.send(self.config.topic, key, self.serialize(event))
        self._newest_event_ms = max(self._newest_event_ms, when)
        return 0

    def run(self) -> None:
        log.info("watching", extra={"directory": self.config.directory, "s3_bucket": self.config.s3_bucket,
                                    "s3_prefix": self.config.s3_prefix})
        self.stop.health.ready()  # Kafka and the manifest answered (the constructor)
        try:
            while not self.stop.is_set():
                try:
                    published = self.scan()
                    log.info("scan complete", extra={"files_published": published})
                except SourceUnavailable as exc:
                    # What was committed stays committed; the next scan picks up where this one failed.
                    metrics.SOURCE_ERRORS.labels(self.config.name, "s3").inc()
                    log.warning("S3 unavailable: retrying at the next scan", extra={
                        "error": str(exc), "retry_in_s": self.config.poll_interval_s})
                self.stop.wait(self.config.poll_interval_s)
        finally:
            self.producer.close()
