"""Where files come from: a local directory, or an S3 prefix through the minio SDK.

A file's identity is its URI, size and checksum (SHA-256 locally, the ETag on S3): the manifest
records identities, so a file is published once, and again only if its content changes. Its
modification time (``LastModified`` on S3) is when it landed: the ingest time of data with no time
column of its own.
"""
from __future__ import annotations

import fnmatch
import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError

from connectors.files.readers import file_format
from kappa.errors import Refused, Unavailable


class SourceUnavailable(Unavailable, ConnectionError):
    """S3 did not answer or failed a request (the connector retries at its next scan)."""


@dataclass(frozen=True)
class FileRef:
    uri: str
    size: int
    checksum: str
    format: str
    modified_ms: int                  # last modification, epoch ms: when this version landed


def sha256(path: Path, length: int | None = None) -> str:
    """SHA-256 of the file, or of its first ``length`` bytes."""
    digest = hashlib.sha256()
    remaining = length if length is not None else -1
    with open(path, "rb") as f:
        while remaining:
            chunk = f.read(1 << 20 if remaining < 0 else min(1 << 20, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining = remaining - len(chunk) if remaining > 0 else remaining
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
                stat = path.stat()
                yield FileRef(path.as_uri(), stat.st_size, sha256(path), fmt, int(stat.st_mtime * 1000))

    @contextmanager
    def open(self, ref: FileRef) -> Iterator[Path]:
        yield Path(ref.uri.removeprefix("file://"))


class S3Prefix:
    def __init__(self, client: Minio, bucket: str, prefix: str, patterns: list[str], endpoint: str) -> None:
        self.client, self.bucket, self.prefix, self.patterns = client, bucket, prefix, patterns
        self.endpoint = endpoint  # named in errors

    def ref(self, key: str, size: int, etag: str, last_modified: datetime) -> FileRef | None:
        fmt = file_format(key)
        name = key.rsplit("/", 1)[-1]
        if not fmt or not any(fnmatch.fnmatch(name, p) for p in self.patterns):
            return None
        return FileRef(f"s3://{self.bucket}/{key}", size, etag.strip('"'), fmt, int(last_modified.timestamp() * 1000))

    def list(self) -> Iterator[FileRef]:
        with self._translated("listing"):
            objects = list(self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True))
        for obj in objects:
            if obj.is_dir:
                continue
            ref = self.ref(obj.object_name, obj.size, obj.etag, obj.last_modified)
            if ref:
                yield ref

    @contextmanager
    def open(self, ref: FileRef) -> Iterator[Path]:
        """The object in a temporary file: Parquet needs random access, and a copy reads consistently."""
        key = ref.uri.removeprefix(f"s3://{self.bucket}/")
        with tempfile.TemporaryDirectory(prefix="kappa-files-") as tmp:
            path = Path(tmp) / key.rsplit("/", 1)[-1]
            with self._translated(f"reading {ref.uri}"):
                self.client.fget_object(self.bucket, key, str(path))
            yield path

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """The minio client's errors as the platform's: a missing bucket is the config's to fix;
        anything else is the server's."""
        where = f"S3 at {self.endpoint}"
        try:
            yield
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                raise Refused(f"bucket {self.bucket} (config 's3_bucket') does not exist on {where}: create it "
                              "or fix the config") from None
            raise SourceUnavailable(f"{where}, {doing} s3://{self.bucket}/{self.prefix}: {exc.code}: "
                                    f"{exc.message}") from exc
        except HTTPError as exc:
            raise SourceUnavailable(f"{where} did not answer {doing} s3://{self.bucket}/{self.prefix}: "
                                    f"{type(exc).__name__}") from exc
