"""The names the monitoring may use: series the documented metrics export, and recorded ones."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from stack.prometheus import RULES

ROOT = Path(__file__).resolve().parents[3]


def rules() -> list[dict]:
    return [rule for path in sorted(RULES.glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def exported_series() -> set[str]:
    """The series names the documented metrics put on /metrics (a histogram's _bucket, ...)."""
    documented = set(re.findall(r"^\| `(kappa_\w+)`", (ROOT / "docs" / "metrics.md").read_text(), re.M))
    series = set()
    for name in documented:
        series |= {name, name.removesuffix("_total"), f"{name}_count", f"{name}_sum", f"{name}_bucket"}
    return series


def recorded_series() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}
