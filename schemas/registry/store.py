"""The registry's state: subjects, versions, ids, configs and modes, kept in a compacted topic.

Every change is first written to the topic (and acknowledged by Kafka), then applied to memory
with the same function that replays the topic at start-up, so a restarted registry rebuilds
exactly the state it acknowledged. Keys and values are JSON in the shape Confluent's registry
uses for ``_schemas`` (``keytype`` SCHEMA / CONFIG / MODE); a null value deletes a key for good.

Schema references are resolved as Confluent does: a reference names a type (``name``) defined by
the schema registered under ``subject`` at ``version``; the referenced schemas (and theirs, depth
first) are parsed before the referencing one, for registration and for compatibility checks alike.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from schemas.registry import compatibility
from schemas.topics import ensure_topics
from kappa.errors import KappaError, Unavailable

log = logging.getLogger(__name__)


class RegistryError(KappaError):
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


class SubjectModeNotFound(RegistryError):
    status, error_code = 404, 40409


class Incompatible(RegistryError):
    status, error_code = 409, 409  # Confluent answers 409 twice; its clients' tests assert error_code 409


class InvalidSchema(RegistryError):
    status, error_code = 422, 42201


class InvalidVersion(RegistryError):
    status, error_code = 422, 42202


class InvalidCompatibilityLevel(RegistryError):
    status, error_code = 422, 42203


class InvalidMode(RegistryError):
    status, error_code = 422, 42204


class OperationNotPermitted(RegistryError):
    status, error_code = 422, 42205


class ReferenceExists(RegistryError):
    status, error_code = 422, 42206


class IdDoesNotMatch(RegistryError):
    status, error_code = 422, 42207


class StoreUnavailable(RegistryError, Unavailable):
    status, error_code = 500, 50003


MODES = ("READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")
# The fields of PUT /config that are stored and returned as given (Confluent applies the metadata
# and rule-set defaults and overrides to new versions; this registry keeps them for the clients).
CONFIG_FIELDS = ("compatibilityGroup", "normalize", "validateFields", "validateRules", "alias",
                 "defaultMetadata", "overrideMetadata", "defaultRuleSet", "overrideRuleSet")
_GUIDS = uuid.UUID("5c4e9d7e-5b7a-4f5e-9a43-6b6d0b8f2a11")  # namespace of the schemas' guids


@dataclass
class SchemaVersion:
    subject: str
    version: int
    id: int
    schema: str
    deleted: bool = False
    references: list[dict] = field(default_factory=list)  # {name, subject, version}
    metadata: dict | None = None
    rule_set: dict | None = None
    guid: str = ""
    identity: str = field(default="", repr=False)  # see Store._identity; set when the version is applied

    def schema_api(self) -> dict:
        """The schema as ``GET /schemas/ids/{id}`` and ``/schemas/guids/{guid}`` show it."""
        out: dict = {"schema": self.schema}
        if self.references:
            out["references"] = self.references
        if self.metadata:
            out["metadata"] = self.metadata
        if self.rule_set:
            out["ruleSet"] = self.rule_set
        out["guid"] = self.guid
        return out

    def to_api(self) -> dict:
        return {"subject": self.subject, "version": self.version, "id": self.id, **self.schema_api()}

    def refers_to(self, subject: str, version: int) -> bool:
        return any(r["subject"] == subject and int(r["version"]) == version for r in self.references)


class Store:
    """Registry state in memory, made durable in a compacted Kafka topic (single writer)."""

    def __init__(
        self, bootstrap_servers: str, topic: str, default_compatibility: str = "BACKWARD",
        client_config: dict[str, str] | None = None,
    ) -> None:
        self.topic = topic
        self.default_compatibility = default_compatibility.upper()
        self._kafka = {"bootstrap.servers": bootstrap_servers, "logger": logging.getLogger("kafka.client"),
                       **(client_config or {})}
        self._lock = threading.RLock()
        self._versions: dict[str, list[SchemaVersion]] = {}
        self._by_id: dict[int, SchemaVersion] = {}
        self._id_by_identity: dict[str, int] = {}
        self._by_guid: dict[str, SchemaVersion] = {}
        self._config: dict[str | None, dict] = {}
        self._mode: dict[str | None, str] = {}
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
                for state in (self._versions, self._by_id, self._id_by_identity, self._by_guid, self._config,
                              self._mode):
                    state.clear()
                self._replay(timeout)
                break
            except (KafkaException, StoreUnavailable) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("registry store not ready yet (%s): retrying", exc)
                time.sleep(1)
        self._producer = Producer({**self._kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
        log.info("registry state loaded from %s: %d subjects, %d schemas",
                 self.topic, len(self._versions), len(self._by_id))

    def _ensure_topic(self, timeout: float) -> None:
        ensure_topics(self._kafka, [NewTopic(self.topic, num_partitions=1, replication_factor=-1,
                                             config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"})],
                      timeout)

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
                entry = SchemaVersion(subject, version, int(value["id"]), value["schema"], bool(value.get("deleted")),
                                      list(value.get("references") or []), value.get("metadata"),
                                      value.get("ruleSet"))
                try:
                    identity = self._identity(entry.schema, entry.references, entry.metadata, entry.rule_set)
                except RegistryError:  # compaction can replay a version before one it references
                    identity = json.dumps([entry.schema, entry.references, entry.metadata, entry.rule_set])
                entry.identity = identity
                entry.guid = value.get("guid") or str(uuid.uuid5(_GUIDS, identity))
                versions.append(entry)
                versions.sort(key=lambda v: v.version)
                self._by_id.setdefault(entry.id, entry)
                self._by_guid.setdefault(entry.guid, entry)
                self._id_by_identity.setdefault(identity, entry.id)
            if not versions:
                del self._versions[subject]
        elif kind in ("CONFIG", "MODE"):
            subject = key.get("subject")
            state = self._config if kind == "CONFIG" else self._mode
            if value is None:
                state.pop(subject, None)
            else:
                state[subject] = value if kind == "CONFIG" else value["mode"]

    # -- references ------------------------------------------------------------------------------
    def _referenced(self, references: list[dict], seen: set | None = None) -> list[SchemaVersion]:
        """The schemas ``references`` name, each after the ones it references itself (depth first)."""
        seen = set() if seen is None else seen
        found: list[SchemaVersion] = []
        for ref in references:
            try:
                entry = self.version(ref["subject"], ref["version"], include_deleted=True)
            except (SubjectNotFound, VersionNotFound, InvalidVersion):
                raise InvalidSchema(f"Invalid schema: reference '{ref.get('name')}' names subject "
                                    f"'{ref['subject']}' version {ref['version']}, which is not registered") from None
            if (entry.subject, entry.version) in seen:
                continue
            seen.add((entry.subject, entry.version))
            found += self._referenced(entry.references, seen)
            found.append(entry)
        return found

    def _parsed(self, schema_str: str, references: list[dict]):
        try:
            return compatibility.parse(schema_str, [e.schema for e in self._referenced(references)])
        except compatibility.InvalidSchema as exc:
            raise InvalidSchema(str(exc)) from exc

    def _identity(self, schema_str: str, references: list[dict], metadata: dict | None = None,
                  rule_set: dict | None = None) -> str:
        """What two registrations share to be one schema (one id): its canonical text, its references,
        its metadata and rule set."""
        try:
            text = compatibility.canonical(schema_str, [e.schema for e in self._referenced(references)])
        except compatibility.InvalidSchema as exc:
            raise InvalidSchema(str(exc)) from exc
        return json.dumps([text, references, metadata or None, rule_set or None], sort_keys=True)

    def _normal_references(self, references: list[dict] | None) -> list[dict]:
        """References as stored: name, subject, and the version they resolve to ("latest"/-1 pinned)."""
        normal = []
        for ref in references or []:
            if not isinstance(ref, dict) or not {"name", "subject", "version"} <= ref.keys():
                raise InvalidSchema(f"Invalid schema: a reference needs name, subject and version, got {ref!r}")
            entry = self._referenced([ref])[-1]
            normal.append({"name": ref["name"], "subject": entry.subject, "version": entry.version})
        return normal

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

    def by_id(self, schema_id: int) -> SchemaVersion:
        """The first version registered with ``schema_id`` (its schema, references, metadata)."""
        with self._lock:
            try:
                return self._by_id[schema_id]
            except KeyError:
                raise SchemaNotFound(f"Schema {schema_id} not found") from None

    def by_guid(self, guid: str) -> SchemaVersion:
        with self._lock:
            try:
                return self._by_guid[guid]
            except KeyError:
                raise SchemaNotFound(f"Schema {guid} not found") from None

    def usages(self, schema_id: int) -> list[SchemaVersion]:
        self.by_id(schema_id)
        with self._lock:
            return [v for vs in self._versions.values() for v in vs if v.id == schema_id and not v.deleted]

    def lookup(self, subject: str, schema_str: str, include_deleted: bool = False,
               references: list[dict] | None = None) -> SchemaVersion:
        references = self._normal_references(references)
        wanted = self._identity(schema_str, references)
        for entry in self.versions(subject, include_deleted):
            if self._identity(entry.schema, entry.references) == wanted:
                return entry
        raise SchemaNotFound("Schema not found")

    def referenced_by(self, subject: str, version: str | int) -> list[int]:
        """Ids of the live schemas that reference this version."""
        entry = self.version(subject, version)
        with self._lock:
            return sorted({v.id for vs in self._versions.values() for v in vs
                           if not v.deleted and v.refers_to(entry.subject, entry.version)})

    def latest_with_metadata(self, subject: str, properties: dict[str, str],
                             include_deleted: bool = False) -> SchemaVersion:
        """The newest version whose metadata properties hold every one of ``properties``."""
        for entry in reversed(self.versions(subject, include_deleted)):
            held = (entry.metadata or {}).get("properties") or {}
            if all(held.get(k) == v for k, v in properties.items()):
                return entry
        raise SchemaNotFound("Schema not found")

    # -- configuration and modes -------------------------------------------------------------------
    def compatibility_level(self, subject: str | None, default_to_global: bool = True) -> str:
        return self.config(subject, default_to_global)["compatibilityLevel"]

    def config(self, subject: str | None, default_to_global: bool = True) -> dict:
        """The config as ``GET /config[/{subject}]`` answers: its level and any stored fields."""
        with self._lock:
            own = self._config.get(subject) if subject is not None else None
            if subject is not None and own is None and not default_to_global:
                raise SubjectConfigNotFound(f"Subject '{subject}' does not have subject-level compatibility configured")
            merged = dict(self._config.get(None) or {})
            if subject is not None and own is not None:
                merged = {**merged, **own} if default_to_global else dict(own)
            merged.setdefault("compatibilityLevel", self.default_compatibility)
            return {"compatibilityLevel": merged.pop("compatibilityLevel"), **merged}

    def set_config(self, subject: str | None, update: dict) -> dict:
        """``PUT /config[/{subject}]``: the level (``compatibility``) and/or the other fields, each optional."""
        level = update.get("compatibility", update.get("compatibilityLevel"))
        if level is not None or not any(k in update for k in CONFIG_FIELDS):
            level = (level or "").upper()
            if level not in compatibility.LEVELS:
                raise InvalidCompatibilityLevel(
                    f"Invalid compatibility level. Valid values are {', '.join(compatibility.LEVELS)}")
        with self._lock:
            value = dict(self._config.get(subject) or {})
            value.update({k: update[k] for k in CONFIG_FIELDS if k in update})
            if level is not None:
                value["compatibilityLevel"] = level
            self._write({"keytype": "CONFIG", "subject": subject, "magic": 0}, value)
        return {**({"compatibility": level} if level is not None else {}),
                **{k: update[k] for k in CONFIG_FIELDS if k in update}}

    def set_compatibility_level(self, subject: str | None, level: str) -> str:
        return self.set_config(subject, {"compatibility": level})["compatibility"]

    def delete_config(self, subject: str | None) -> dict:
        """The subject's config removed (it follows the global one again), or the global one reset."""
        with self._lock:
            old = self.config(subject, default_to_global=subject is None)
            self._write({"keytype": "CONFIG", "subject": subject, "magic": 0}, None)
            return old

    def mode(self, subject: str | None = None, default_to_global: bool = True) -> str:
        with self._lock:
            if subject is not None and subject in self._mode:
                return self._mode[subject]
            if subject is not None and not default_to_global:
                raise SubjectModeNotFound(f"Subject '{subject}' does not have subject-level mode configured")
            return self._mode.get(None, "READWRITE")

    def set_mode(self, subject: str | None, mode: str, force: bool = False) -> str:
        """READWRITE, READONLY (writes refused), IMPORT (ids and versions given by the writer, no
        compatibility checks; only on an empty registry or subject unless forced)."""
        mode = (mode or "").upper()
        if mode not in MODES:
            raise InvalidMode(f"Invalid mode. Valid values are {', '.join(MODES)}")
        with self._lock:
            if mode == "IMPORT" and not force and self.mode(subject) != "IMPORT":
                present = self.subjects() if subject is None else [s for s in self.subjects() if s == subject]
                if present:
                    raise OperationNotPermitted("Cannot import since found existing subjects")
            self._write({"keytype": "MODE", "subject": subject, "magic": 0}, {"mode": mode})
        return mode

    def delete_mode(self, subject: str) -> str:
        with self._lock:
            old = self.mode(subject, default_to_global=False)
            self._write({"keytype": "MODE", "subject": subject, "magic": 0}, None)
            return old

    def _writable(self, subject: str) -> str:
        mode = self.mode(subject)
        if mode in ("READONLY", "READONLY_OVERRIDE"):
            raise OperationNotPermitted(f"Subject {subject} is in read-only mode")
        return mode

    # -- compatibility ---------------------------------------------------------------------------
    def check(self, subject: str, schema_str: str, version: str | None = None,
              references: list[dict] | None = None) -> list[str]:
        """Problems with registering ``schema_str`` in ``subject`` (against one version, or per the level)."""
        new = self._parsed(schema_str, self._normal_references(references))
        try:
            live = self.versions(subject)
        except SubjectNotFound:
            if version is None:
                return []
            raise
        if version is not None:
            # Against one chosen version: the level's direction, not its transitivity.
            level = self.compatibility_level(subject).replace("_TRANSITIVE", "")
            old = self.version(subject, version)
            return compatibility.check(new, [self._parsed(old.schema, old.references)], level)
        return compatibility.check(new, [self._parsed(v.schema, v.references) for v in live],
                                   self.compatibility_level(subject))

    # -- writes --------------------------------------------------------------------------------
    def register(self, subject: str, schema_str: str, references: list[dict] | None = None,
                 metadata: dict | None = None, rule_set: dict | None = None,
                 schema_id: int | None = None, version: int | None = None) -> SchemaVersion:
        """The version holding ``schema_str`` in ``subject``, adding one if it passes the level's check.

        ``schema_id`` and ``version`` are the writer's own, and only taken in IMPORT mode.
        """
        with self._lock:
            mode = self._writable(subject)
            if (schema_id is not None and schema_id >= 0) and mode != "IMPORT":
                raise OperationNotPermitted(f"Subject {subject} is not in import mode")
            references = self._normal_references(references)
            identity = self._identity(schema_str, references, metadata, rule_set)
            for entry in self._versions.get(subject, []):
                if not entry.deleted and entry.identity == identity:
                    return entry
            if mode != "IMPORT":
                problems = self.check(subject, schema_str, references=references)
                if problems:
                    level = self.compatibility_level(subject)
                    raise Incompatible(
                        f"Schema being registered is incompatible with an earlier schema for subject "
                        f"\"{subject}\" (compatibility {level}), details: [{'; '.join(problems)}]"
                    )
            known = self._id_by_identity.get(identity)
            if schema_id is not None and schema_id >= 0:
                if schema_id in self._by_id and known != schema_id:
                    raise IdDoesNotMatch(f"Overwrite new schema with id {schema_id} is not permitted.")
                known = schema_id
            all_versions = self._versions.get(subject, [])
            number = version if version is not None and version > 0 else \
                ((all_versions[-1].version + 1) if all_versions else 1)
            value = {"subject": subject, "version": number, "id": known or (max(self._by_id, default=0) + 1),
                     "schema": schema_str, "schemaType": "AVRO", "deleted": False}
            value.update({k: v for k, v in (("references", references), ("metadata", metadata),
                                            ("ruleSet", rule_set)) if v})
            self._write({"keytype": "SCHEMA", "subject": subject, "version": number, "magic": 1}, value)
            return self.version(subject, number)

    def _refuse_if_referenced(self, entry: SchemaVersion) -> None:
        for versions in self._versions.values():
            for other in versions:
                if not other.deleted and other is not entry and other.refers_to(entry.subject, entry.version):
                    raise ReferenceExists(f"One or more references exist to the schema {{magic=1,keytype=SCHEMA,"
                                          f"subject={entry.subject},version={entry.version}}}.")

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        with self._lock:
            self._writable(subject)
            everything = self.versions(subject, include_deleted=True)
            live = [v for v in everything if not v.deleted]
            for entry in everything:
                self._refuse_if_referenced(entry)
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
            self._writable(subject)
            entry = self.version(subject, version, include_deleted=permanent)
            self._refuse_if_referenced(entry)
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
    value = {"subject": entry.subject, "version": entry.version, "id": entry.id, "schema": entry.schema,
             "schemaType": "AVRO", "deleted": deleted}
    value.update({k: v for k, v in (("references", entry.references), ("metadata", entry.metadata),
                                    ("ruleSet", entry.rule_set)) if v})
    return value


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
