"""Who may do what alone, as PostgreSQL session advisory locks: one process per streaming query
(two processes on one checkpoint corrupt it), one raw archiver per pipeline, one rebuild, cut-over
or drop of a pipeline's serving versions at a time.

A session lock lives as long as the connection holding it: the server releases it when its process
ends, however it ends, so a crashed holder never blocks the next one. The connection's
``application_name`` says who holds it (process, host, since when), for the refusal message.
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager

from kappa.settings import Settings
from kappa.errors import Refused

JOB = 0x6A6F6273       # "jobs": a streaming query's process
ARCHIVE = 0x61726368   # "arch": a pipeline's raw archiver
VERSIONS = 0x6B617070  # "kapp": a pipeline's serving versions


class LockHeld(Refused, RuntimeError):
    """Another process holds the lock; the message names it."""


def _connect(settings: Settings, purpose: str):
    import psycopg2

    conn = psycopg2.connect(settings.postgres.dsn(), connect_timeout=10,
                            application_name=f"{purpose} pid {os.getpid()} on {socket.gethostname()}"[:63])
    conn.autocommit = True
    return conn


def try_hold(settings: Settings, space: int, key: str, purpose: str):
    """The connection that holds the lock (close it to release), or None when another process has it."""
    conn = _connect(settings, purpose)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (space, key))
        if cur.fetchone()[0]:
            return conn
    conn.close()
    return None


def holder(settings: Settings, space: int, key: str) -> str | None:
    """Who holds the lock ("'<application name>', since <time>"), None when nobody does."""
    conn = _connect(settings, "kappa lock lookup")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a "
                        "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s "
                        "AND l.objid = hashtext(%s)::oid AND l.objsubid = 2", (space, key))
            found = cur.fetchone()
    finally:
        conn.close()
    return f"{found[0]!r}, since {found[1]:%Y-%m-%d %H:%M:%S %Z}" if found else None


@contextmanager
def hold(settings: Settings, space: int, key: str, purpose: str, refusal: str):
    """Hold the lock for the ``with`` block, or raise :class:`LockHeld` at once:
    ``refusal`` with ``{holder}`` filled in."""
    conn = try_hold(settings, space, key, purpose)
    if conn is None:
        raise LockHeld(refusal.format(holder=holder(settings, space, key) or "another process"))
    try:
        yield conn
    finally:
        conn.close()
