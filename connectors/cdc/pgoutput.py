"""Decoder of PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

The message formats are those of the PostgreSQL documentation, "Logical Replication Message
Formats". Column values stay in PostgreSQL's text form here; :mod:`connectors.cdc.types` turns
them into Avro values. Only the messages a protocol-1 subscriber receives are handled.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from kappa.errors import KappaError

_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">BQQq")


def pg_timestamp_ms(micros_since_2000: int) -> int:
    """A pgoutput timestamp (microseconds since 2000-01-01) as Unix epoch milliseconds."""
    return (micros_since_2000 + 946_684_800_000_000) // 1000


def lsn_to_str(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def str_to_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    table: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_ts_ms: int
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_ts_ms: int


# A tuple is a list of column values in text form; None is SQL NULL; UNCHANGED marks an unchanged
# TOAST value the server did not send (only possible with REPLICA IDENTITY DEFAULT).
UNCHANGED = object()


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: list


@dataclass(frozen=True)
class Update:
    relation_oid: int
    old: list | None      # set when the key changed (K) or with REPLICA IDENTITY FULL (O)
    old_is_key_only: bool
    new: list


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old: list
    old_is_key_only: bool


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]


class ProtocolError(KappaError, ValueError):
    pass


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\x00", pos)
    return data[pos:end].decode(), end + 1


def _tuple(data: bytes, pos: int) -> tuple[list, int]:
    (count,) = _I16.unpack_from(data, pos)
    pos += 2
    values: list = []
    append = values.append
    for _ in range(count):
        kind = data[pos]
        pos += 1
        if kind == 116:  # 't' text
            (length,) = _I32.unpack_from(data, pos)
            pos += 4
            append(data[pos:pos + length].decode())
            pos += length
        elif kind == 110:  # 'n' null
            append(None)
        elif kind == 117:  # 'u' unchanged toast
            append(UNCHANGED)
        elif kind == 98:  # 'b' binary: only with the binary option, which we never request
            raise ProtocolError("binary tuple data received; the connector requests text format")
        else:
            raise ProtocolError(f"unknown tuple data kind {chr(kind)!r}")
    return values, pos


def decode(data: bytes):
    """One pgoutput message -> Begin | Commit | Relation | Insert | Update | Delete | Truncate | None."""
    tag = data[0]
    if tag == 73:  # 'I'
        oid = _I32.unpack_from(data, 1)[0] & 0xFFFFFFFF
        if data[5] != 78:  # 'N'
            raise ProtocolError("insert without a new tuple")
        return Insert(oid, _tuple(data, 6)[0])
    if tag == 85:  # 'U'
        oid = _I32.unpack_from(data, 1)[0] & 0xFFFFFFFF
        pos, old, key_only = 5, None, False
        if data[pos] in (75, 79):  # 'K' key / 'O' old
            key_only = data[pos] == 75
            old, pos = _tuple(data, pos + 1)
        if data[pos] != 78:
            raise ProtocolError("update without a new tuple")
        return Update(oid, old, key_only, _tuple(data, pos + 1)[0])
    if tag == 68:  # 'D'
        oid = _I32.unpack_from(data, 1)[0] & 0xFFFFFFFF
        key_only = data[5] == 75
        return Delete(oid, _tuple(data, 6)[0], key_only)
    if tag == 66:  # 'B'
        final_lsn, ts, xid = _BEGIN.unpack_from(data, 1)
        return Begin(final_lsn, pg_timestamp_ms(ts), xid)
    if tag == 67:  # 'C'
        _flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(data, 1)
        return Commit(commit_lsn, end_lsn, pg_timestamp_ms(ts))
    if tag == 82:  # 'R'
        oid = _I32.unpack_from(data, 1)[0] & 0xFFFFFFFF
        schema, pos = _cstring(data, 5)
        table, pos = _cstring(data, pos)
        identity = chr(data[pos])
        (count,) = _I16.unpack_from(data, pos + 1)
        pos += 3
        columns = []
        for _ in range(count):
            flags = data[pos]
            name, pos = _cstring(data, pos + 1)
            type_oid, modifier = struct.unpack_from(">Ii", data, pos)
            pos += 8
            columns.append(Column(name, type_oid, modifier, bool(flags & 1)))
        return Relation(oid, schema, table, identity, tuple(columns))
    if tag == 84:  # 'T'
        (count,) = _I32.unpack_from(data, 1)
        oids = struct.unpack_from(f">{count}I", data, 6)
        return Truncate(tuple(oids))
    if tag in (89, 79, 77):  # 'Y' type, 'O' origin, 'M' logical message: nothing to publish
        return None
    raise ProtocolError(f"unknown pgoutput message {chr(tag)!r}")

