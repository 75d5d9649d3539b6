"""Where files come from: a local directory, or an S3 prefix through the minio SDK.

A file's identity is its URI, size and checksum (SHA-256 locally, the ETag on S3): the manifest
records identities, so a file is published once, and again only if its content changes.
"""
from __future__ import annotations

import fnmatch
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

from connectors.files.readers import file_format


@dataclass(frozen=True)
class FileRef:
    uri: str
    size: int
    checksum: str
    format: str


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LocalDirectory:
    def __init__(self, directory: Path, patterns: list[str]) -> None:
        self.directory = directory.resolve()
        self.patterns = patterns

    def list(self) -> Iterator[FileRef]:
        for path in sorted(self.directory.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            fmt = file_format(path.name)
            if fmt and any(fnmatch.fnmatch(path.name, p) for p in self.patterns):
                yield FileRef(path.as_uri(), path.stat().st_size, sha256(path), fmt)

    @contextmanager
    def open(self, ref: FileRef) -> Iterator[Path]:
        yield Path(ref.uri.removeprefix("file://"))


class S3Prefix:
    def __init__(self, client: Minio, bucket: str, prefix: str, patterns: list[str]) -> None:
        self.client, self.bucket, self.prefix, self.patterns = client, bucket, prefix, patterns

    def ref(self, key: str, size: int, etag: str) -> FileRef | None:
        fmt = file_format(key)
        name = key.rsplit("/", 1)[-1]
        if not fmt or not any(fnmatch.fnmatch(name, p) for p in self.patterns):
            return None
        return FileRef(f"s3://{self.bucket}/{key}", size, etag.strip('"'), fmt)

    def list(self) -> Iterator[FileRef]:
        for obj in self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True):
            if obj.is_dir:
                continue
            ref = self.ref(obj.object_name, obj.size, obj.etag)
            if ref:
                yield ref

    @contextmanager
    def open(self, ref: FileRef) -> Iterator[Path]:
        """The object in a temporary file: Parquet needs random access, and a copy reads consistently."""
        key = ref.uri.removeprefix(f"s3://{self.bucket}/")
        with tempfile.TemporaryDirectory(prefix="kappa-files-") as tmp:
            path = Path(tmp) / key.rsplit("/", 1)[-1]
            self.client.fget_object(self.bucket, key, str(path))
            yield path
