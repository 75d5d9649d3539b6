"""Alertmanager from Debian: the local stack's Prometheus sends it the platform's alerts, and it
routes them to a webhook on 127.0.0.1 (any local receiver; the tests listen there)."""
from __future__ import annotations

import shutil

import requests

from stack import ports
from stack.paths import REPO_ROOT
from stack.provision import ensure_debian_packages
from stack.service import Service

PRODUCTION = REPO_ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"


def binary() -> str:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "/usr/bin/prometheus-alertmanager"


def amtool() -> str:
    """Alertmanager's own checker (the same Debian package), installed if missing."""
    if shutil.which("amtool") is None:
        ensure_debian_packages("prometheus-alertmanager")
    return shutil.which("amtool") or "/usr/bin/amtool"


class Alertmanager(Service):
    name = "alertmanager"
    port = ports.ALERTMANAGER
    start_timeout = 60.0
    stop_grace = 20.0

    def provision(self) -> None:
        if not (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")):
            ensure_debian_packages("prometheus-alertmanager")

    def config(self) -> str:
        """The stack's alertmanager.yml: the routing, grouping and inhibition of
        monitoring/alertmanager/alertmanager.yml, every receiver replaced by the local webhook
        (no mail server, Slack or PagerDuty here), with short waits so a test sees alerts soon."""
        import yaml

        config = yaml.safe_load(PRODUCTION.read_text())
        config["global"] = {"resolve_timeout": "5m"}
        webhook = {"url": f"http://127.0.0.1:{ports.ALERT_WEBHOOK}/alerts", "send_resolved": True}
        config["receivers"] = [{"name": r["name"], "webhook_configs": [webhook]} for r in config["receivers"]]
        config["route"].update(group_wait="1s", group_interval="5s")
        return yaml.safe_dump(config, sort_keys=False)

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "alertmanager.yml").write_text(self.config())

    def command(self) -> list[str]:
        return [binary(), f"--config.file={self.home / 'alertmanager.yml'}", f"--storage.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                "--log.level=info"]

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False
