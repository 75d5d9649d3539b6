"""The Grafana dashboards: the committed JSON is what monitoring/grafana/dashboards.py builds (run
``python -m monitoring dashboards`` after changing it), lag comes first, and every panel query
reads only metrics the platform exports or records (docs/metrics.md, the recording rules)."""
from __future__ import annotations

import json
import re

from monitoring.grafana import dashboards
from tests.unit.monitoring.names import exported_series, recorded_series


def test_the_committed_json_is_what_the_code_builds():
    built = dashboards.render()
    on_disk = {p.name: p.read_text() for p in dashboards.HERE.glob("*.json")}
    assert set(on_disk) == set(built), "run: python -m monitoring dashboards"
    for name, text in built.items():
        assert on_disk[name] == text, f"{name} differs from monitoring/grafana/dashboards.py: run python -m monitoring dashboards"


def test_lag_comes_first():
    for text in dashboards.render().values():
        panels = json.loads(text)["panels"]
        assert panels[0]["type"] == "row"
        assert "lag" in panels[1]["title"].lower() or "behind" in panels[0]["title"].lower()


def test_every_panel_reads_metrics_the_platform_exports():
    known = exported_series() | recorded_series()
    for name, text in dashboards.render().items():
        found = dashboards.queries(text)
        assert found, name
        for title, expr in found:
            used = set(re.findall(r"\b(kappa_[a-z0-9_:]+)", expr))
            assert used and used <= known, (name, title, sorted(used - known))
