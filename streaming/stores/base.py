"""The contract of a store: every verb the platform asks of one, and how a partition is written.

A store module (``postgres``, ``clickhouse``, ``cassandra``, ``lake``) defines one :class:`Store`,
the store's verbs on the driver: its endpoint (named in errors, probed when a batch fails), its
column type for each Spark type, its serving table (created when missing, evolved when the schema
gains columns), a pipeline's hand-written migrations, and its part of the serving versions (the
tables a version holds, the cut-over, the refresh of a view, the drop). Its :class:`Sink` is the
store's client on the executors: it writes one partition of one batch, an Arrow table, idempotently.

What is the same for every store lives here: the idempotence token of a write (query, batch,
partition), bounded retries with exponential backoff for the errors the store declares transient
(its server is down or busy), the comparison of an existing table with the schema, and the
bookkeeping of migrations. When a write's retries are spent it fails with :class:`SinkUnavailable`,
whose message names the store, its address, the table, the batch and the partition: the batch
fails, and the job restarts it from its checkpoint (``streaming.jobs.runner``).

Partitioning a batch and running these writes on the executors are in
:mod:`streaming.stores.writer`; live jobs and batch replay both go through it.
"""
from __future__ import annotations

import logging
import random
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa

from kappa.errors import Refused, Unavailable
from kappa.settings import Settings
from streaming.tables import Table, TableError
from streaming.tables.types import DECIMAL

if TYPE_CHECKING:
    from streaming.versions import Version

log = logging.getLogger(__name__)
MIGRATIONS = "pipeline_migrations"  # each namespace's record of the migrations its stores applied
RECORD = "serving_versions"         # each namespace's record of its pipelines' versions (streaming.versions)
BOOKKEEPING = {MIGRATIONS, RECORD}  # a namespace's own tables, not serving tables
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Endpoint:
    """A server a job talks to, as a person calls it, with the setting that names its address."""

    name: str
    setting: str
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def reachable(self, timeout: float = 2.0) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return True
        except OSError:
            return False


class Store(ABC):
    """One store's verbs on the driver. One instance per store, in the registry
    (:data:`streaming.stores.REGISTRY`); it holds no connection: each verb opens its client and
    closes it, and :meth:`sink` makes the executors' client."""

    name: ClassVar[str]
    # Written per partition from the executors (the serving stores); the lake is written by Delta.
    serving: ClassVar[bool] = True
    # Serves a version through views with the serving names: its first cut-over moves the
    # namespace's own tables (version 1's) into version 1's namespace. Otherwise readers follow a
    # pointer, and version 1's tables stay where they are.
    moves_first_version: ClassVar[bool] = False

    # The executors' client class (constructed with the settings and a namespace), for a store
    # written per partition.
    sink_class: ClassVar[type[Sink] | None] = None

    def endpoint(self, settings: Settings) -> Endpoint:
        """Where the store is, with the setting that says so: by default its settings group's host and
        port (``settings.<name>.host/port``)."""
        group = getattr(settings, self.name)
        return Endpoint(self.name, f"{self.name}.host/port", group.host, group.port)

    # Spark SQL type (DataType.simpleString()) -> the store's name for it, as the store reports it
    # back (how an existing table is compared with the schema); decimals by ``decimal``.
    types: ClassVar[dict[str, str]]
    decimal: ClassVar[str]  # e.g. "numeric({precision},{scale})"

    def column_type(self, spark_type: str) -> str:
        """The store's column type of a Spark type that :func:`streaming.tables.types.supported`
        accepts (``decimal(p,s)`` too, for the README's table); not nullable."""
        decimal = DECIMAL.match(spark_type)
        return self.decimal.format(precision=decimal[1], scale=decimal[2]) if decimal else self.types[spark_type]

    def ensure_table(self, settings: Settings, namespace: str, table: Table, job: str) -> list[str]:
        """Create ``table`` in ``namespace`` when missing, add the columns the schema gained; the
        columns added (all of them when created). A type or key change raises :class:`TableError`."""
        raise NotImplementedError(f"{self.name} tables are made by their writer")

    def sink(self, settings: Settings, namespace: str) -> Sink:
        """The executors' client of the store: writes partitions into ``namespace``."""
        if self.sink_class is None:
            raise NotImplementedError(f"{self.name} is not written per partition")
        return self.sink_class(settings, namespace)

    def migrate(self, settings: Settings, namespace: str, pipeline: str, folder: Path) -> list[str]:
        """Apply the migrations of ``folder/<store>/`` that ``namespace`` has not recorded for
        ``pipeline``; the versions applied now."""
        if migration_files(folder, self.name):
            raise Refused(f"pipeline {pipeline}: {folder / self.name} holds migrations, which {self.name} does not take")
        return []

    # The store's part of the serving versions (streaming.versions).
    @abstractmethod
    def tables(self, settings: Settings, home: str) -> list[str]:
        """The serving tables of a version built in ``home`` (a namespace), without bookkeeping."""

    @abstractmethod
    def cut_over(self, settings: Settings, namespace: str, target: Version, current: Version) -> list[str]:
        """Point the serving names of ``namespace`` at ``target``'s tables, atomically for this
        store's readers; what was switched, one line each."""

    def refresh(self, settings: Settings, namespace: str, home: str, table: str) -> None:
        """Re-make what points at ``home.table`` after the table gained columns (a view)."""

    @abstractmethod
    def drop(self, settings: Settings, namespace: str, version: Version) -> list[str]:
        """Drop a previous version's tables; what was dropped. Where the version shares the
        serving namespace (version 1), only its own tables go."""


def check_existing(job: str, store: str, qualified: str, table: Table, existing: dict[str, str],
                   key: list[str], types: Callable[[str, str], str]) -> list[str]:
    """The table's columns ``existing`` (name -> store type) lacks; raises on a type or key change."""
    if list(key) != list(table.key):
        raise TableError(f"pipeline {job}: {store} table {qualified} has the key {key}, the pipeline's key is "
                         f"{list(table.key)}: a store cannot change a table's key in place; set 'key' in the "
                         "pipeline file to the table's key, or write to a new namespace (or drop the table) and replay")
    missing = []
    for column, spark_type in table.columns:
        wanted = types(column, spark_type)
        have = existing.get(column)
        if have is None:
            missing.append(column)
        elif have != wanted:
            raise TableError(f"pipeline {job}: column {column} of {store} table {qualified} is {have}, the schema now "
                             f"makes it {wanted} (Spark {spark_type}): a store cannot change a column's type in "
                             "place. Keep the field's type and add a field with a new name, or write to a new "
                             "namespace (or drop the table) and replay")
    return missing


def logged(store: str, qualified: str, added: list[str], existed: bool) -> list[str]:
    if added and existed:
        log.info("%s table %s: added columns %s (the schema gained them)", store, qualified, added)
    elif added:
        log.info("%s table %s: created", store, qualified)
    return added


def migration_files(folder: Path, store: str) -> list[tuple[str, str]]:
    """(version, text) of a store's migrations in ``folder`` (``<store>/V<NNN>__<what>.<ext>``), in order."""
    return [(p.name.split("__", 1)[0], p.read_text()) for p in sorted((folder / store).glob("V*__*.*"))]


def statements(text: str, namespace: str) -> list[str]:
    """A migration's statements, comments dropped, ``{namespace}`` filled in."""
    body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.format(namespace=namespace).split(";") if s.strip()]


def check_namespace(namespace: str) -> None:
    """Migrations name the namespace unquoted (``{namespace}``): it must be a plain identifier."""
    if not _NAME.match(namespace):
        raise Refused(f"namespace {namespace!r} must be a lower-case SQL identifier")


def apply_migrations(folder: Path, store: str, namespace: str, done: set[str], execute: Callable[[str], object],
                     record: Callable[[str], object]) -> list[str]:
    """Run each migration of ``store`` not in ``done``, statement by statement, recording each."""
    applied_now = []
    for version, text in migration_files(folder, store):
        if version in done:
            continue
        for statement in statements(text, namespace):
            execute(statement)
        record(version)
        applied_now.append(version)
    return applied_now


@dataclass(frozen=True)
class WriteToken:
    """Which write this is. A batch rerun after a crash is cut into the same partitions, so the same
    (query, batch, partition) always carries the same rows: stores deduplicate by it."""

    query: str
    batch_id: int
    partition: int

    def for_table(self, qualified_table: str) -> str:
        return f"{self.query}:{self.batch_id}:{self.partition}:{qualified_table}"


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per partition write; the waits double from ``backoff_s`` up to ``max_backoff_s``
    (with jitter), so the default rides out ~30 s of a server being away before the batch fails."""

    attempts: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def waits(self):
        wait = self.backoff_s
        for _ in range(self.attempts - 1):
            yield wait * random.uniform(0.8, 1.2)
            wait = min(wait * 2, self.max_backoff_s)


class SinkUnavailable(Unavailable, RuntimeError):
    """A store did not take a partition's write within the retry policy."""

    def __init__(self, sink: str, address: str, table: str, token: WriteToken, attempts: int, cause: BaseException):
        super().__init__(
            f"{sink} at {address} did not take the write of {table} for batch {token.batch_id} "
            f"(partition {token.partition}) after {attempts} attempts: {type(cause).__name__}: {cause}")
        self.sink, self.address, self.table, self.token = sink, address, table, token


class Sink(ABC):
    """One store, written from an executor's Python worker. Opened once per worker and reused."""

    name: ClassVar[str]
    # Exceptions meaning "the server is not answering now": retried, then SinkUnavailable.
    transient: ClassVar[tuple[type[BaseException], ...]] = (ConnectionError, TimeoutError)

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    @property
    @abstractmethod
    def address(self) -> str:
        """Where the store is, for error messages (host:port)."""

    @abstractmethod
    def write(self, rows: pa.Table, spec: Table, token: WriteToken) -> None:
        """Write one partition's rows of ``spec`` (the newest change per key). Must be idempotent:
        the same token with the same rows may come again after a crash or a retry."""

    def reset(self) -> None:
        """Drop a connection that failed, so the next attempt opens a new one."""

    def close(self) -> None:
        """Release the client."""

    def write_with_retries(self, rows: pa.Table, spec: Table | None, token: WriteToken, policy: RetryPolicy,
                           table: str | None = None) -> None:
        table = table or f"{self.namespace}.{spec.name}"
        self.call_with_retries(lambda: self.write(rows, spec, token), table, token, policy)

    def call_with_retries(self, action: Callable[[], None], table: str, token: WriteToken, policy: RetryPolicy) -> None:
        """Run ``action``, a write of this store's ``table``, retrying what ``transient`` names."""
        waits = policy.waits()
        attempt = 0
        while True:
            attempt += 1
            try:
                action()
                return
            except self.transient as exc:
                wait = next(waits, None)
                if wait is None:
                    raise SinkUnavailable(self.name, self.address, table, token, attempt, exc) from exc
                log.warning("%s at %s: writing %s (batch %d, partition %d) failed (%s: %s); retry %d of %d in %.1fs",
                            self.name, self.address, table, token.batch_id, token.partition, type(exc).__name__,
                            exc, attempt, policy.attempts - 1, wait)
                self.reset()
                time.sleep(wait)
