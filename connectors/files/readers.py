"""Rows of CSV, JSON Lines and Parquet files, each with its 1-based position in the file.

A row that cannot be read (a CSV line with the wrong number of fields, a line that is not JSON)
comes out as :class:`BadRow` with the reason and the raw text, for the dead-letter queue.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class BadRow:
    reason: str
    raw: str


def file_format(name: str) -> str | None:
    return FORMATS.get(Path(name).suffix.lower())


def rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    if fmt == "csv":
        yield from _csv(path)
    elif fmt == "jsonl":
        yield from _jsonl(path)
    elif fmt == "parquet":
        yield from _parquet(path)
    else:
        raise ValueError(f"unknown file format {fmt!r}; one of {sorted(set(FORMATS.values()))}")


def _csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        for values in reader:
            line = reader.line_num
            if not values:
                continue
            if len(values) != len(header):
                yield line, BadRow(f"malformed CSV row: {len(values)} fields, the header has {len(header)}",
                                   ",".join(values))
                continue
            yield line, dict(zip(header, values, strict=True))


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    with open(path, encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, BadRow(f"malformed JSON line: {exc}", text.rstrip("\n"))
                continue
            yield line, value if isinstance(value, dict) else BadRow("a JSON line must be an object", text.rstrip("\n"))


def _parquet(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for record in batch.to_pylist():
            row += 1
            yield row, record
