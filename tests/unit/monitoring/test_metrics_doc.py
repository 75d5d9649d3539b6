"""docs/metrics.md and the code agree: every metric a process defines is documented once, with its
type and labels, and every documented metric is defined somewhere."""
from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import batch_replay.metrics
import connectors.metrics
import monitoring.exporter
import streaming.metrics

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
MODULES = (streaming.metrics, connectors.metrics, monitoring.exporter, batch_replay.metrics)


def _documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`kappa_\w+`", cells[0]):
            name = cells[0].strip("`")
            assert name not in rows, f"{name} is documented twice"
            rows[name] = (cells[1], tuple(re.findall(r"`(\w+)`", cells[2])))
    return rows


def _defined() -> dict[str, tuple[str, tuple[str, ...]]]:
    found = {}
    for module in MODULES:
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                name = value._name + ("_total" if value._type == "counter" else "")
                found[name] = (value._type, tuple(value._labelnames))
    collector = monitoring.exporter.LagCollector.__new__(monitoring.exporter.LagCollector)
    for family in collector.describe():  # the lag exporter's measured-at-scrape gauges
        found[family.name] = (family.type, tuple(monitoring.exporter.LABELS))
    return found


def test_every_metric_is_documented_with_its_type_and_labels_and_nothing_else_is():
    documented, defined = _documented(), _defined()
    assert sorted(set(defined) - set(documented)) == [], "metrics missing from docs/metrics.md"
    assert sorted(set(documented) - set(defined)) == [], "documented metrics nobody exports"
    for name, (kind, labels) in defined.items():
        assert documented[name] == (kind, labels), name


def test_one_naming_scheme():
    for name in _defined():
        assert re.fullmatch(r"kappa_[a-z]+(_[a-z0-9]+)+", name), name
