"""The contract every partition sink follows: write one partition of one batch, idempotently.

A store module (Cassandra, ClickHouse, PostgreSQL, the dead-letter topic) subclasses :class:`Sink`
and only knows how to write an Arrow table with its own client. What is the same for every store
lives here: the idempotence token of a write (query, batch, partition), and bounded retries with
exponential backoff for the errors the store declares transient (its server is down or busy).
When the retries are spent the write fails with :class:`SinkUnavailable`, whose message names the
store, its address, the table, the batch and the partition: the batch fails, and the job restarts
it from its checkpoint (``streaming.jobs.runner``).

Partitioning a batch, running these writes on the executors and the Delta lake commit are in
:mod:`streaming.sinks.writer`; live jobs and batch replay both go through it.
"""
from __future__ import annotations

import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from streaming.tables import Table
from kappa.errors import Unavailable

log = logging.getLogger(__name__)


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
