"""Prometheus (and promtool) from Debian, scraping the stack's servers and the platform's processes."""
from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

import requests

from stack import ports
from stack.paths import REPO_ROOT, STACK_DIR
from stack.provision import ensure_debian_packages, go_binary
from stack.service import Service

CONF = STACK_DIR / "conf" / "prometheus"
RULES = REPO_ROOT / "monitoring" / "prometheus" / "rules"  # the platform's recording and alert rules


PROMTOOL = ("github.com/prometheus/prometheus/cmd/promtool", "v0.316.0")


def promtool() -> Path:
    """Debian's promtool, of the same release as the stack's Prometheus that evaluates the rules."""
    if not shutil.which("promtool"):
        ensure_debian_packages("prometheus")
    return Path(shutil.which("promtool") or "/usr/bin/promtool")


def kubernetes_promtool() -> Path:
    """promtool built from the Go module proxy (minutes, once, cached): Debian's leaves out Kubernetes
    service discovery, so only this one checks monitoring/prometheus/prometheus-kubernetes.yml.
    Only that check needs it, so the stack itself never builds it."""
    return go_binary(*PROMTOOL, "promtool")


class Prometheus(Service):
    name = "prometheus"
    code = ("monitoring/prometheus/rules", "stack/conf/prometheus")  # restarted when they change
    port = ports.PROMETHEUS
    start_timeout = 60.0
    stop_grace = 20.0
    depends_on = ("schema-registry", "clickhouse", "s3", "alertmanager")

    @property
    def targets_dir(self) -> Path:
        """Where platform processes drop file_sd target files."""
        return self.home / "targets"

    def provision(self) -> None:
        if not shutil.which("prometheus"):
            ensure_debian_packages("prometheus")

    @property
    def rules_dir(self) -> Path:
        """The platform's rules as this Prometheus evaluates them: runbook links made absolute."""
        return self.home / "rules"

    def config(self) -> str:
        """The stack's prometheus.yml: its servers, the platform's target files, the platform's rules."""
        return Template((CONF / "prometheus.yml").read_text()).substitute(
            prometheus_port=self.port, registry_port=ports.SCHEMA_REGISTRY,
            clickhouse_port=ports.CLICKHOUSE_HTTP, s3_metrics_port=ports.SEAWEED_METRICS,
            targets_dir=self.targets_dir, rules_dir=self.rules_dir, alertmanager_port=ports.ALERTMANAGER,
            local_rules_dir=self.home / "rules.d",
        )

    def write_rules(self) -> None:
        """monitoring/prometheus/rules/*.yml, each alert's runbook_url rebased on the setting
        prometheus.runbook_url (monitoring/runbook.py)."""
        import yaml

        from kappa.settings import get_settings
        from monitoring import runbook

        base = runbook.base_url(get_settings())
        shutil.rmtree(self.rules_dir, ignore_errors=True)
        self.rules_dir.mkdir(parents=True)
        for path in sorted(RULES.glob("*.yml")):
            rules = yaml.safe_load(path.read_text())
            rules["groups"] = runbook.rebased(rules["groups"], base)
            (self.rules_dir / path.name).write_text(
                f"# {path.relative_to(REPO_ROOT)}, runbook links rebased on {base}\n"
                + yaml.safe_dump(rules, sort_keys=False, width=120))

    def prepare(self) -> None:
        self.write_rules()
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "rules.d").mkdir(exist_ok=True)
        (self.home / "prometheus.yml").write_text(self.config())
        if self.pid() is not None:  # a running one reads the rewritten rules (a new runbook_url setting)
            try:
                requests.post(f"http://127.0.0.1:{self.port}/-/reload", timeout=10)
            except requests.RequestException:
                pass  # not answering: start() restarts it

    def command(self) -> list[str]:
        return [
            shutil.which("prometheus") or "/usr/bin/prometheus",
            f"--config.file={self.home / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=7d",
        ]

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False
