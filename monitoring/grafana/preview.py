"""Pictures of the dashboards without a Grafana: each panel's queries run against a Prometheus
(``query_range``) and are drawn with matplotlib where the dashboard puts the panel.

    python -m monitoring preview [--minutes 30] [--out docs/dashboards]

The Grafana server is AGPL and is not installed here, so this is how README shows what the
dashboards look like on a real run's data: the same JSON a Grafana imports, the same PromQL,
Grafana's template variables filled in as "all" (``$job`` -> ``.*``, ``$__rate_interval`` -> 1m).
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import requests

from monitoring.grafana import dashboards

GRID_COLUMNS = 24


def _fill(expr: str, step_s: int) -> str:
    """Grafana's variables as "all", and its rate interval as four scrape steps."""
    expr = expr.replace("$__rate_interval", f"{max(60, 4 * step_s)}s")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def series(prometheus_url: str, expr: str, start: float, end: float, step_s: int) -> list[tuple[dict, list, list]]:
    """(labels, times, values) of each series ``expr`` gives over [start, end]."""
    answer = requests.get(f"{prometheus_url}/api/v1/query_range", timeout=60,
                          params={"query": _fill(expr, step_s), "start": start, "end": end, "step": step_s}).json()
    if answer.get("status") != "success":
        raise ValueError(f"Prometheus refused {expr!r}: {answer.get('error')}")
    out = []
    for result in answer["data"]["result"]:
        times = [datetime.fromtimestamp(float(t)) for t, _ in result["values"]]
        values = [float(v) for _, v in result["values"]]
        out.append((result["metric"], times, values))
    return out


def _legend(template: str, labels: dict) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def render(board_json: str, prometheus_url: str, out: Path, minutes: float = 30, step_s: int = 15) -> Path:
    """One dashboard as a PNG: its rows and panels at their grid positions, each with its data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    board = json.loads(board_json)
    panels = board["panels"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    end = time.time()
    start = end - minutes * 60
    figure = plt.figure(figsize=(16, bottom * 0.42))
    figure.suptitle(f"{board['title']}  (last {minutes:.0f} min, from {prometheus_url})", fontsize=13)
    grid = figure.add_gridspec(bottom, GRID_COLUMNS, hspace=1.6, wspace=0.6, top=0.96, bottom=0.02)
    for panel in panels:
        pos = panel["gridPos"]
        cell = grid[pos["y"]:pos["y"] + pos["h"], pos["x"]:pos["x"] + pos["w"]]
        if panel["type"] == "row":
            axis = figure.add_subplot(cell)
            axis.axis("off")
            axis.text(0, 0.0, panel["title"], fontsize=12, fontweight="bold", va="bottom")
            continue
        axis = figure.add_subplot(grid[pos["y"] + 1:pos["y"] + pos["h"], pos["x"]:pos["x"] + pos["w"]])
        axis.set_title(panel["title"], fontsize=10, loc="left")
        drawn = 0
        for target in panel.get("targets", []):
            for labels, times, values in series(prometheus_url, target["expr"], start, end, step_s):
                axis.plot(times, values, linewidth=1.4, label=_legend(target.get("legendFormat", ""), labels))
                drawn += 1
        if not drawn:
            axis.text(0.5, 0.5, "no data", transform=axis.transAxes, ha="center", va="center", color="grey")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        axis.set_ylabel({"s": "seconds", "bytes": "bytes", "short": ""}.get(unit, unit), fontsize=8)
        axis.set_xlim(datetime.fromtimestamp(start), datetime.fromtimestamp(end))
        axis.set_ylim(bottom=0)
        axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        if 0 < drawn <= 8:
            axis.legend(fontsize=7, loc="upper left")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return out


def render_all(prometheus_url: str, folder: Path, minutes: float = 30) -> list[Path]:
    return [render(text, prometheus_url, folder / name.replace(".json", ".png"), minutes)
            for name, text in dashboards.render().items()]
