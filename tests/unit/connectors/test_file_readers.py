"""Rows and positions of CSV, JSON Lines and Parquet files; unreadable rows come out as BadRow."""
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.files.readers import BadRow, file_format, rows


def test_csv_rows_with_line_numbers_and_bad_rows(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('id,name\n1,"multi\nline"\n2\n\n3,c\n')
    got = list(rows(path, "csv"))
    assert got[0] == (3, {"id": "1", "name": "multi\nline"})  # line of the row's last physical line
    assert isinstance(got[1][1], BadRow) and "1 fields, the header has 2" in got[1][1].reason
    assert got[2] == (6, {"id": "3", "name": "c"})


def test_jsonl_rows(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n{"a":\n')
    got = list(rows(path, "jsonl"))
    assert got[0] == (1, {"a": 1})
    assert got[1][0] == 3 and "must be an object" in got[1][1].reason
    assert got[2][0] == 4 and "malformed JSON line" in got[2][1].reason


def test_parquet_rows(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"a": list(range(25_000))}), path)
    got = list(rows(path, "parquet"))
    assert len(got) == 25_000 and got[-1] == (25_000, {"a": 24_999})


def test_formats_by_extension():
    assert file_format("x/y.CSV") == "csv" and file_format("y.ndjson") == "jsonl"
    assert file_format("y.parquet") == "parquet" and file_format("notes.txt") is None
