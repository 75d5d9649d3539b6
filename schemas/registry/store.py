"""The registry's state: subjects, versions, ids and compatibility levels, kept in a compacted topic.

Every change is first written to the topic (and acknowledged by Kafka), then applied to memory
with the same function that replays the topic at start-up, so a restarted registry rebuilds
exactly the state it acknowledged. Keys and values are JSON in the shape Confluent's registry
uses for ``_schemas`` (``keytype`` SCHEMA / CONFIG); a null value deletes a key for good.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.registry import compatibility

log = logging.getLogger(__name__)


class RegistryError(Exception):
    """An error the REST API returns with Confluent's ``error_code`` and HTTP status."""

    status = 500
    error_code = 50001

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SubjectNotFound(RegistryError):
    status, error_code = 404, 40401


class VersionNotFound(RegistryError):
    status, error_code = 404, 40402


class SchemaNotFound(RegistryError):
    status, error_code = 404, 40403


class SubjectSoftDeleted(RegistryError):
    status, error_code = 404, 40404


class SubjectNotSoftDeleted(RegistryError):
    status, error_code = 404, 40405


class VersionSoftDeleted(RegistryError):
    status, error_code = 404, 40406


class VersionNotSoftDeleted(RegistryError):
    status, error_code = 404, 40407


class SubjectConfigNotFound(RegistryError):
    status, error_code = 404, 40408


class Incompatible(RegistryError):
    status, error_code = 409, 409


class InvalidSchema(RegistryError):
    status, error_code = 422, 42201


class InvalidVersion(RegistryError):
    status, error_code = 422, 42202


class InvalidCompatibilityLevel(RegistryError):
    status, error_code = 422, 42203


class StoreUnavailable(RegistryError):
    status, error_code = 500, 50003


@dataclass
class SchemaVersion:
    subject: str
    version: int
    id: int
    schema: str
    deleted: bool = False

    def to_api(self) -> dict:
        return {"subject": self.subject, "version": self.version, "id": self.id, "schema": self.schema}


class Store:
    """Registry state in memory, made durable in a compacted Kafka topic (single writer)."""

    def __init__(
        self, bootstrap_servers: str, topic: str, default_compatibility: str = "BACKWARD",
        client_config: dict[str, str] | None = None,
    ) -> None:
        self.topic = topic
        self.default_compatibility = default_compatibility.upper()
        self._kafka = {"bootstrap.servers": bootstrap_servers, **(client_config or {})}
        self._lock = threading.RLock()
        self._versions: dict[str, list[SchemaVersion]] = {}
        self._schemas_by_id: dict[int, str] = {}
        self._id_by_canonical: dict[str, int] = {}
        self._config: dict[str | None, str] = {}
        self._producer: Producer | None = None

    # -- start-up ------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Create the topic if needed and replay it; the registry serves only after this.

        Right after a broker starts it answers metadata requests before partition leadership has
        settled (NOT_LEADER_FOR_PARTITION, coordinator loading): such errors are retried until
        ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._ensure_topic(timeout)
                self._versions.clear(), self._schemas_by_id.clear(), self._id_by_canonical.clear(), self._config.clear()
                self._replay(timeout)
                break
            except (KafkaException, StoreUnavailable) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("registry store not ready yet (%s): retrying", exc)
                time.sleep(1)
        self._producer = Producer({**self._kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
        log.info("registry state loaded from %s: %d subjects, %d schemas",
                 self.topic, len(self._versions), len(self._schemas_by_id))

    def _ensure_topic(self, timeout: float) -> None:
        admin = AdminClient(self._kafka)
        if self.topic in admin.list_topics(timeout=timeout).topics:
            return
        futures = admin.create_topics([NewTopic(
            self.topic, num_partitions=1, replication_factor=-1,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        )])
        try:
            futures[self.topic].result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise

    def _replay(self, timeout: float) -> None:
        consumer = Consumer({
            **self._kafka, "group.id": "schema-registry-replay", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": True,
        })
        try:
            partition = TopicPartition(self.topic, 0)
            _, high = consumer.get_watermark_offsets(partition, timeout=timeout)
            if high == 0:
                return
            consumer.assign([TopicPartition(self.topic, 0, 0)])
            while True:
                msg = consumer.poll(timeout)
                if msg is None:
                    raise StoreUnavailable(f"timed out replaying {self.topic}")
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        if msg.offset() >= high:
                            break
                        continue
                    raise StoreUnavailable(f"reading {self.topic}: {msg.error()}")
                self._apply(json.loads(msg.key()), json.loads(msg.value()) if msg.value() else None)
                if msg.offset() + 1 >= high:
                    break
        finally:
            consumer.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)

    # -- the log -------------------------------------------------------------------------------
    def _write(self, key: dict, value: dict | None) -> None:
        """Append one record and wait for Kafka's acknowledgement before changing memory."""
        if self._producer is None:
            raise StoreUnavailable("registry store is not started")
        errors: list = []
        self._producer.produce(
            self.topic, key=json.dumps(key, sort_keys=True), value=json.dumps(value) if value is not None else None,
            on_delivery=lambda err, _msg: errors.append(err),
        )
        remaining = self._producer.flush(30)
        if remaining or not errors or errors[0] is not None:
            raise StoreUnavailable(
                f"could not write to {self.topic} at {self._kafka['bootstrap.servers']}: "
                f"{errors[0] if errors and errors[0] else 'no acknowledgement within 30s'}"
            )
        self._apply(key, value)

    def _apply(self, key: dict, value: dict | None) -> None:
        kind = key.get("keytype")
        if kind == "SCHEMA":
            subject, version = key["subject"], int(key["version"])
            versions = self._versions.setdefault(subject, [])
            versions[:] = [v for v in versions if v.version != version]
            if value is not None:
                entry = SchemaVersion(subject, version, int(value["id"]), value["schema"], bool(value.get("deleted")))
                versions.append(entry)
                versions.sort(key=lambda v: v.version)
                self._schemas_by_id[entry.id] = entry.schema
                self._id_by_canonical.setdefault(compatibility.canonical(entry.schema), entry.id)
            if not versions:
                del self._versions[subject]
        elif kind == "CONFIG":
            subject = key.get("subject")
            if value is None:
                self._config.pop(subject, None)
            else:
                self._config[subject] = value["compatibilityLevel"]

    # -- reads ---------------------------------------------------------------------------------
    def subjects(self, include_deleted: bool = False) -> list[str]:
        with self._lock:
            return sorted(s for s, vs in self._versions.items()
                          if include_deleted or any(not v.deleted for v in vs))

    def versions(self, subject: str, include_deleted: bool = False) -> list[SchemaVersion]:
        with self._lock:
            found = [v for v in self._versions.get(subject, []) if include_deleted or not v.deleted]
            if not found:
                raise SubjectNotFound(f"Subject '{subject}' not found.")
            return found

    def version(self, subject: str, version: str | int, include_deleted: bool = False) -> SchemaVersion:
        versions = self.versions(subject, include_deleted)
        if str(version) in ("latest", "-1"):
            return versions[-1]
        number = _version_number(version)
        for entry in versions:
            if entry.version == number:
                return entry
        raise VersionNotFound(f"Version {version} not found.")

    def schema_by_id(self, schema_id: int) -> str:
        with self._lock:
            try:
                return self._schemas_by_id[schema_id]
            except KeyError:
                raise SchemaNotFound(f"Schema {schema_id} not found") from None

    def usages(self, schema_id: int) -> list[SchemaVersion]:
        self.schema_by_id(schema_id)
        with self._lock:
            return [v for vs in self._versions.values() for v in vs if v.id == schema_id and not v.deleted]

    def lookup(self, subject: str, schema_str: str, include_deleted: bool = False) -> SchemaVersion:
        wanted = _canonical(schema_str)
        for entry in self.versions(subject, include_deleted):
            if compatibility.canonical(entry.schema) == wanted:
                return entry
        raise SchemaNotFound("Schema not found")

    # -- compatibility ---------------------------------------------------------------------------
    def compatibility_level(self, subject: str | None, default_to_global: bool = True) -> str:
        with self._lock:
            if subject is not None and subject in self._config:
                return self._config[subject]
            if subject is not None and not default_to_global:
                raise SubjectConfigNotFound(f"Subject '{subject}' does not have subject-level compatibility configured")
            return self._config.get(None, self.default_compatibility)

    def set_compatibility_level(self, subject: str | None, level: str) -> str:
        level = (level or "").upper()
        if level not in compatibility.LEVELS:
            raise InvalidCompatibilityLevel(
                f"Invalid compatibility level. Valid values are {', '.join(compatibility.LEVELS)}")
        with self._lock:
            self._write({"keytype": "CONFIG", "subject": subject, "magic": 0}, {"compatibilityLevel": level})
        return level

    def delete_compatibility_level(self, subject: str) -> str:
        with self._lock:
            level = self.compatibility_level(subject, default_to_global=False)
            self._write({"keytype": "CONFIG", "subject": subject, "magic": 0}, None)
            return level

    def check(self, subject: str, schema_str: str, version: str | None = None) -> list[str]:
        """Problems with registering ``schema_str`` in ``subject`` (against one version, or per the level)."""
        _canonical(schema_str)
        try:
            live = self.versions(subject)
        except SubjectNotFound:
            if version is None:
                return []
            raise
        if version is not None:
            # Against one chosen version: the level's direction, not its transitivity.
            level = self.compatibility_level(subject).replace("_TRANSITIVE", "")
            return compatibility.check(schema_str, [self.version(subject, version).schema], level)
        return compatibility.check(schema_str, [v.schema for v in live], self.compatibility_level(subject))

    # -- writes --------------------------------------------------------------------------------
    def register(self, subject: str, schema_str: str) -> SchemaVersion:
        """The version holding ``schema_str`` in ``subject``, adding one if it passes the level's check."""
        wanted = _canonical(schema_str)
        with self._lock:
            try:
                return self.lookup(subject, schema_str)
            except (SubjectNotFound, SchemaNotFound):
                pass
            problems = self.check(subject, schema_str)
            if problems:
                level = self.compatibility_level(subject)
                raise Incompatible(
                    f"Schema being registered is incompatible with an earlier schema for subject "
                    f"\"{subject}\" (compatibility {level}), details: [{'; '.join(problems)}]"
                )
            all_versions = self._versions.get(subject, [])
            version = (all_versions[-1].version + 1) if all_versions else 1
            schema_id = self._id_by_canonical.get(wanted) or (max(self._schemas_by_id, default=0) + 1)
            self._write(
                {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1},
                {"subject": subject, "version": version, "id": schema_id, "schema": schema_str,
                 "schemaType": "AVRO", "deleted": False},
            )
            return self.version(subject, version)

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        with self._lock:
            everything = self.versions(subject, include_deleted=True)
            live = [v for v in everything if not v.deleted]
            if permanent:
                if live:
                    raise SubjectNotSoftDeleted(
                        f"Subject '{subject}' was not deleted first before being permanently deleted")
                for entry in everything:
                    self._write(_schema_key(entry), None)
                return [v.version for v in everything]
            if not live:
                raise SubjectSoftDeleted(f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently")
            for entry in live:
                self._write(_schema_key(entry), _schema_value(entry, deleted=True))
            return [v.version for v in live]

    def delete_version(self, subject: str, version: str, permanent: bool) -> int:
        with self._lock:
            entry = self.version(subject, version, include_deleted=permanent)
            if permanent:
                if not entry.deleted:
                    raise VersionNotSoftDeleted(
                        f"Subject '{subject}' Version {entry.version} was not deleted first before being permanently deleted")
                self._write(_schema_key(entry), None)
            else:
                self._write(_schema_key(entry), _schema_value(entry, deleted=True))
            return entry.version


def _schema_key(entry: SchemaVersion) -> dict:
    return {"keytype": "SCHEMA", "subject": entry.subject, "version": entry.version, "magic": 1}


def _schema_value(entry: SchemaVersion, deleted: bool) -> dict:
    return {"subject": entry.subject, "version": entry.version, "id": entry.id, "schema": entry.schema,
            "schemaType": "AVRO", "deleted": deleted}


def _canonical(schema_str: str) -> str:
    try:
        return compatibility.canonical(schema_str)
    except compatibility.InvalidSchema as exc:
        raise InvalidSchema(str(exc)) from exc


def _version_number(version: str | int) -> int:
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise InvalidVersion(
            f"The specified version '{version}' is not a valid version id. "
            "Allowed values are between [1, 2^31-1] and the string \"latest\"")
    return number
