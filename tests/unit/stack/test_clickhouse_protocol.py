"""Request parsing of the development ClickHouse server."""
import gzip

import lz4.frame
import pytest

from stack.clickhouse_server import _INSERT_RE, ClickHouseError, _split_columns, choose_encoding, decompress


def test_insert_statements_are_split_from_their_data():
    m = _INSERT_RE.match("INSERT INTO `db`.`my table` (`a`, `b c`) FORMAT Native\n\x00\x01")
    assert (m.group("database"), m.group("table"), m.group("format")) == ("`db`", "`my table`", "Native")
    assert _split_columns(m.group("columns")) == ["a", "b c"]
    m = _INSERT_RE.match("insert into t SETTINGS async_insert=0 format TSV 1\t2\n")
    assert m.group("settings") == "async_insert=0" and m.group("format") == "TSV"
    assert m.end() == len("insert into t SETTINGS async_insert=0 format TSV ")
    assert _INSERT_RE.match("INSERT INTO t VALUES (1)") is None
    assert _INSERT_RE.match("SELECT 1 FORMAT Native") is None


def test_encodings():
    assert decompress(gzip.compress(b"abc"), "gzip") == b"abc"
    assert decompress(lz4.frame.compress(b"abc"), "lz4") == b"abc"
    with pytest.raises(ClickHouseError):
        decompress(b"not lz4", "lz4")
    assert choose_encoding("br;q=1.0, zstd, gzip") in ("br", "zstd")
    assert choose_encoding("identity") is None
