"""ClickHouse for development: the chdb engine served over HTTP by :mod:`stack.clickhouse_server`."""
from __future__ import annotations

import sys

import requests

from stack import ports
from stack.service import Service


class ClickHouse(Service):
    name = "clickhouse"
    port = ports.CLICKHOUSE_HTTP
    start_timeout = 60.0
    stop_grace = 30.0

    def command(self) -> list[str]:
        return [sys.executable, "-m", "stack.clickhouse_server", "--data", str(self.data_dir),
                "--port", str(self.port)]

    def environment(self) -> dict[str, str]:
        from stack.paths import REPO_ROOT

        return {"PYTHONPATH": str(REPO_ROOT)}

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/ping", timeout=1).text == "Ok.\n"
        except requests.RequestException:
            return False
