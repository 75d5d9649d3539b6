"""pgoutput messages, built byte by byte as the PostgreSQL documentation specifies, decode correctly."""
import struct
from decimal import Decimal

import pytest

from connectors.cdc import pgoutput, types


def tuple_data(*values):
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is pgoutput.UNCHANGED:
            out += b"u"
        else:
            raw = value.encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def test_relation_begin_insert_update_delete_commit():
    relation = (b"R" + struct.pack(">I", 16384) + b"public\x00orders\x00" + b"d" + struct.pack(">h", 2)
                + b"\x01id\x00" + struct.pack(">Ii", types.INT8, -1)
                + b"\x00status\x00" + struct.pack(">Ii", types.TEXT, -1))
    decoded = pgoutput.decode(relation)
    assert decoded == pgoutput.Relation(16384, "public", "orders", "d", (
        pgoutput.Column("id", types.INT8, -1, True), pgoutput.Column("status", types.TEXT, -1, False)))

    begin = pgoutput.decode(b"B" + struct.pack(">QqI", 0x1_0000_0010, 1_000_000, 742))
    assert begin == pgoutput.Begin(0x1_0000_0010, 946_684_801_000, 742)  # 2000-01-01 + 1 s, in epoch ms

    insert = pgoutput.decode(b"I" + struct.pack(">I", 16384) + b"N" + tuple_data("7", "NEW"))
    assert insert == pgoutput.Insert(16384, ["7", "NEW"])

    key_change = pgoutput.decode(b"U" + struct.pack(">I", 16384) + b"K" + tuple_data("7", None)
                                 + b"N" + tuple_data("8", pgoutput.UNCHANGED))
    assert key_change.old == ["7", None] and key_change.old_is_key_only
    assert key_change.new[0] == "8" and key_change.new[1] is pgoutput.UNCHANGED

    plain_update = pgoutput.decode(b"U" + struct.pack(">I", 16384) + b"N" + tuple_data("8", "PAID"))
    assert plain_update.old is None and plain_update.new == ["8", "PAID"]

    delete = pgoutput.decode(b"D" + struct.pack(">I", 16384) + b"O" + tuple_data("8", "PAID"))
    assert delete == pgoutput.Delete(16384, ["8", "PAID"], False)

    commit = pgoutput.decode(b"C" + struct.pack(">BQQq", 0, 0x20, 0x48, 2_000_000))
    assert commit == pgoutput.Commit(0x20, 0x48, 946_684_802_000)


def test_lsn_text_form_round_trips():
    assert pgoutput.lsn_to_str(0x1_0000_00A0) == "1/A0"
    assert pgoutput.str_to_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848


def test_text_values_become_avro_values():
    assert types.parser(types.BOOL)("t") is True
    assert types.parser(types.INT8)("-42") == -42
    assert types.parser(types.FLOAT8)("NaN") != types.parser(types.FLOAT8)("NaN")
    assert types.parser(types.TIMESTAMPTZ)("1970-01-01 00:00:01.5+00") == 1_500_000
    assert types.parser(types.TIMESTAMP)("2026-11-26 00:00:00") == 1_795_651_200_000_000
    assert types.parser(types.DATE)("1970-01-11") == 10
    assert types.parser(types.BYTEA)("\\x00ff") == b"\x00\xff"
    assert types.parser(types.NUMERIC)("12345678901234567890.12") == "12345678901234567890.12"
    assert types.avro_type(types.NUMERIC) == "string"  # unconstrained: no scale to fix, the exact text


def test_numeric_with_precision_is_an_avro_decimal():
    modifier = ((12 << 16) | 2) + 4  # numeric(12, 2), as atttypmod and pgoutput carry it
    assert types.decimal_precision(modifier) == (12, 2)
    assert types.avro_type(types.NUMERIC, modifier) == {"type": "bytes", "logicalType": "decimal",
                                                         "precision": 12, "scale": 2}
    assert types.parser(types.NUMERIC, modifier)("-1234.50") == Decimal("-1234.50")
    with pytest.raises(ValueError, match="NaN has no Avro decimal form"):
        types.parser(types.NUMERIC, modifier)("NaN")
    assert types.decimal_precision(((60 << 16) | 2) + 4) is None  # wider than Spark's 38 digits: text
    assert types.avro_type(types.TIMESTAMP)["logicalType"] == "local-timestamp-micros"
