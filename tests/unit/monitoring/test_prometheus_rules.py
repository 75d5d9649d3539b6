"""The monitoring rules and configs, checked by promtool: the local stack's and the Kubernetes
scrape configs, the recording and alert rules, and the promtool unit tests of every alert; every
alert has a test that makes it fire and a runbook section, and every metric the rules read is one
the platform exports (docs/metrics.md)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from stack.prometheus import RULES, Prometheus, kubernetes_promtool, promtool
from tests.unit.monitoring.names import exported_series, recorded_series, rules

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "monitoring" / "prometheus"
TESTS = PROMETHEUS / "tests" / "alerts_test.yml"


def _promtool(*args: str, binary: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(binary or promtool()), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _alerts() -> dict[str, dict]:
    rules = {}
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.update({r["alert"]: r for r in group["rules"] if "alert" in r})
    return rules


def test_the_rules_are_valid_and_every_alert_passes_its_promtool_tests():
    _promtool("check", "rules", *map(str, sorted(RULES.glob("*.yml"))))
    assert "SUCCESS" in _promtool("test", "rules", str(TESTS)).stdout


@pytest.mark.parametrize("config", ["stack", "kubernetes"])
def test_the_prometheus_configs_are_valid(tmp_path, config):
    if config == "stack":  # checked by the promtool of the Prometheus that runs it
        path, binary = tmp_path / "prometheus.yml", promtool()
        path.write_text(Prometheus().config())
    else:  # Kubernetes service discovery: the promtool built from the module proxy
        path, binary = PROMETHEUS / "prometheus-kubernetes.yml", kubernetes_promtool()
    _promtool("check", "config", "--syntax-only", str(path), binary=binary)


def test_the_alertmanager_configs_are_valid(tmp_path):
    from stack.alertmanager import PRODUCTION, Alertmanager, amtool

    local = tmp_path / "alertmanager.yml"
    local.write_text(Alertmanager().config())
    for path in (PRODUCTION, local):
        result = subprocess.run([amtool(), "check-config", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_in_a_test_and_has_a_runbook():
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    for name, rule in _alerts().items():
        assert name in fired, f"{name}: no promtool test makes it fire"
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}"
        assert f"\n## {name}\n" in runbook, f"{name}: no section in docs/runbook.md"
        assert rule["annotations"]["summary"]


def test_the_rules_read_only_metrics_the_platform_exports():
    known = exported_series() | recorded_series()
    for rule in rules():
        used = set(re.findall(r"\b(kappa_[a-z0-9_:]+)", rule["expr"]))
        assert used <= known, (rule.get("alert") or rule["record"], sorted(used - known))
