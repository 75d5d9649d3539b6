"""Poll an HTTP JSON API with an incremental cursor and publish each record as an Avro event.

Cursor styles (``cursor``):

* ``updated_since``: the API returns records changed at or after a time, ordered by
  (time_field, id_field). The cursor is the last published (time, id); the next request asks
  from that time again (inclusive, so records sharing the timestamp are not skipped) and drops
  what is not after the cursor.
* ``id``: the API returns records with an id greater than the cursor, in id order.
* ``page_token``: the API hands out a resumable token; the cursor is the token after the last page.

Within a request the connector follows ``next_page_path`` tokens. Each page's events and the
cursor after it commit in one Kafka transaction, so a restart, even after SIGKILL, neither skips
nor repeats a record for ``read_committed`` readers.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Literal

from connectors import metrics
from connectors.api.client import JsonClient
from connectors.checkpoints import CheckpointStore
from connectors.producer import EventProducer
from connectors.records import InvalidRecord, RecordMapper, epoch_ms, event_id
from connectors.runtime import ConnectorConfig, StopFlag
from schemas import contracts
from kappa.errors import Refused
from kappa.settings import Settings

log = logging.getLogger(__name__)


class ApiConfig(ConnectorConfig):
    url: str
    topic: str
    contract: str | None = None                  # schemas/avro/<contract>.avsc; default: the topic
    cursor: Literal["updated_since", "id", "page_token"] = "updated_since"
    cursor_param: str = "updated_since"          # query parameter carrying the cursor
    cursor_format: Literal["epoch_ms", "iso"] = "epoch_ms"
    start: str | int | None = None               # first cursor value when none is stored
    id_field: str = "id"
    time_field: str = "updated_at"
    key_field: str | None = None                 # Kafka key; default: id_field
    records_path: str = "data"                   # where the records are in a page ("" = the page is a list)
    next_page_path: str | None = "next_page_token"
    page_token_param: str = "page_token"
    page_size_param: str | None = "limit"
    page_size: int = 100
    params: dict[str, str] = {}                  # fixed query parameters
    headers: dict[str, str] = {}                 # e.g. Accept-Language
    # Headers whose values are secrets, by the environment variable holding each, e.g.
    # {Authorization = "KAPPA_API_AUTHORIZATION"}: on Kubernetes the variable comes from a Secret.
    headers_from_env: dict[str, str] = {}
    field_map: dict[str, str] = {}               # contract field -> record field
    poll_interval_s: float = 5.0
    rate_limit_per_s: float = 10.0
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def request_headers(self, environ: dict[str, str] | None = None) -> dict[str, str]:
        """``headers`` plus the secret ones read from the environment (a missing variable stops the
        connector at start, naming it, rather than polling unauthenticated)."""
        environ = os.environ if environ is None else environ
        missing = [variable for variable in self.headers_from_env.values() if variable not in environ]
        if missing:
            raise Refused(f"connector {self.name}: headers_from_env names {', '.join(missing)}, which the "
                             "environment does not have: set it (on Kubernetes, from the connector's Secret)")
        return {**self.headers, **{header: environ[variable] for header, variable in self.headers_from_env.items()}}


def _path(document: Any, path: str | None) -> Any:
    if not path:
        return document
    for part in path.split("."):
        document = document.get(part) if isinstance(document, dict) else None
    return document


class ApiConnector:
    def __init__(self, config: ApiConfig, settings: Settings, stop: StopFlag | None = None) -> None:
        self.config = config
        self.stop = stop or StopFlag()
        contract = contracts.contract(config.contract or config.topic)
        self.mapper = RecordMapper(json.loads(contract.schema), config.field_map)
        self.producer = EventProducer(settings, config.name, transactional=True)
        self.store = CheckpointStore(settings, config.name)
        self.producer.ensure_topics([config.topic])
        self.serialize = self.producer.serializer(config.topic, contract.schema)
        self.serialize_key = self.producer.serializer(config.topic, '"string"', is_key=True)
        self.client = JsonClient(config.name, timeout_s=config.timeout_s, max_attempts=config.max_attempts,
                                 backoff_initial_s=config.backoff_initial_s, backoff_max_s=config.backoff_max_s,
                                 rate_limit_per_s=config.rate_limit_per_s, headers=config.request_headers())
        self._last_event_time = metrics.LAST_EVENT_TIME.labels(config.name)
        self._cursor_age = metrics.LAG.labels(config.name, "seconds")

    # -- cursor ------------------------------------------------------------------------------------
    def _cursor(self) -> dict:
        stored = self.store.get("cursor")
        if stored is not None:
            return stored
        return {"value": self.config.start, "id": None}

    def _cursor_param(self, cursor: dict) -> Any:
        value = cursor["value"]
        if value is None:
            return None
        if self.config.cursor == "updated_since" and self.config.cursor_format == "iso":
            from datetime import datetime, timezone

            return datetime.fromtimestamp(int(value) / 1000, timezone.utc).isoformat().replace("+00:00", "Z")
        return value

    def _time_and_id(self, record: Any) -> tuple[int, str] | None:
        """(time ms, id) that orders a record for the updated_since cursor; None if unusable (DLQ-bound)."""
        if self.config.cursor != "updated_since" or not isinstance(record, dict):
            return None
        try:
            return epoch_ms(record[self.config.time_field]), str(record[self.config.id_field])
        except (KeyError, ValueError, TypeError):
            return None

    def _after_cursor(self, ordered: tuple[int, str] | None, cursor: dict) -> bool:
        if ordered is None or cursor["value"] is None:
            return True
        return ordered > (int(cursor["value"]), cursor["id"] or "")

    # -- one poll ------------------------------------------------------------------------------------
    def poll_once(self) -> int:
        """Read every page available now; returns the number of records published or dead-lettered."""
        cursor = self._cursor()
        token = cursor["value"] if self.config.cursor == "page_token" else None
        total = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            params = dict(self.config.params)
            if self.config.page_size_param:
                params[self.config.page_size_param] = self.config.page_size
            if self.config.cursor != "page_token" and cursor["value"] is not None:
                params[self.config.cursor_param] = self._cursor_param(cursor)
            if token is not None:
                params[self.config.page_token_param] = token
            page = self.client.get(self.config.url, params)
            records = _path(page, self.config.records_path) or []
            for record in records:
                ordered = self._time_and_id(record)  # parsed once per record
                if self._after_cursor(ordered, cursor):
                    self._publish(record, ordered)
                    cursor = self._advance(cursor, record, ordered)
                    total += 1
            token = _path(page, self.config.next_page_path) if self.config.next_page_path else None
            if self.config.cursor == "page_token" and token is not None:
                cursor = {"value": token, "id": None}
            self.producer.commit(self.store, {"cursor": cursor})
            if self.config.cursor == "updated_since" and cursor["value"] is not None:
                self._cursor_age.set(max(0.0, time.time() - int(cursor["value"]) / 1000))
            metrics.BATCH_SECONDS.labels(self.config.name).observe(time.perf_counter() - started)
            if not token or not records:
                break
        return total

    def _advance(self, cursor: dict, record: Any, ordered: tuple[int, str] | None) -> dict:
        if self.config.cursor == "updated_since":
            # An unusable record goes to the DLQ and does not move the cursor.
            return {"value": ordered[0], "id": ordered[1]} if ordered else cursor
        if self.config.cursor == "id" and isinstance(record, dict) and self.config.id_field in record:
            return {"value": record[self.config.id_field], "id": None}
        return cursor

    def _publish(self, record: Any, ordered: tuple[int, str] | None) -> None:
        if ordered is not None:
            position = json.dumps(list(ordered))
        else:
            position = json.dumps([record.get(self.config.id_field)] if isinstance(record, dict)
                                  and self.config.cursor != "updated_since" else [])
        try:
            entity = self.mapper.entity(record)
            if ordered is not None:
                when = ordered[0]
            elif self.config.time_field in record:
                when = epoch_ms(record[self.config.time_field])
            else:
                when = int(time.time() * 1000)
        except (InvalidRecord, ValueError, TypeError) as exc:
            self.producer.dead_letter(self.config.topic, json.dumps(record, default=str), f"invalid record: {exc}",
                                      f"{self.config.url} {position}")
            return
        key_value = record.get(self.config.key_field or self.config.id_field)
        event = {
            "event_id": event_id("api", self.config.url, record.get(self.config.id_field), when),
            "event_time": when,
            "source": {"connector": self.config.name, "position": position, "ts_ms": int(time.time() * 1000)},
            **entity,
        }
        key = None if key_value is None else self.serialize_key(str(key_value))
        self.producer.send(self.config.topic, key, self.serialize(event))
        self._last_event_time.set(when / 1000)

    def run(self) -> None:
        log.info("polling", extra={"url": self.config.url, "cursor": self._cursor()})
        self.stop.health.ready()  # Kafka and the checkpoint store answered (the constructor)
        try:
            while not self.stop.is_set():
                count = self.poll_once()
                if count:
                    log.info("published", extra={"records": count, "cursor": self._cursor()})
                self.stop.wait(self.config.poll_interval_s)
        finally:
            self.producer.close()
