"""The platform's Confluent-compatible schema registry (:mod:`schemas.registry`), on the stack's Kafka."""
from __future__ import annotations

import sys

import requests

from stack import ports
from stack.paths import REPO_ROOT
from stack.service import Service


class SchemaRegistry(Service):
    name = "schema-registry"
    port = ports.SCHEMA_REGISTRY
    start_timeout = 60.0
    stop_grace = 15.0
    depends_on = ("kafka",)
    code = ("kappa", "schemas")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "schemas.registry", "--port", str(self.port)]

    def environment(self) -> dict[str, str]:
        # The local registry always uses the local Kafka, whatever KAPPA_* points clients at.
        return {"PYTHONPATH": str(REPO_ROOT), "KAPPA_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{ports.KAFKA}",
                "KAPPA_CONFIG": ""}

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/subjects", timeout=1).status_code == 200
        except requests.RequestException:
            return False
