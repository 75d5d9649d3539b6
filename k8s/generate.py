"""The manifests that copy something the repo already holds, written from it so they cannot drift:

- ``base/streaming/pipelines.yaml``: the ConfigMap ``kappa-pipelines``, every pipeline file the
  platform finds (``streaming/pipelines``, and the folder of the setting ``streaming.pipelines_dir``;
  the SparkApplications mount it over the image's copies, so ``kappa run NAME`` finds each one);
- ``base/monitoring/prometheus-rules.yaml``: the PrometheusRule of the rule files the local
  Prometheus evaluates (``monitoring/prometheus/rules``), each alert's ``runbook_url`` rebased on
  the setting ``prometheus.runbook_url`` when it is set (``monitoring/runbook.py``): set it to where
  your on-call reads docs/runbook.md before generating your cluster's manifests;
- ``base/monitoring/dashboards.yaml``: one ConfigMap per Grafana dashboard
  (``monitoring/grafana/dashboards``), labelled for Grafana's sidecar loader.

``python -m k8s generate`` writes them; ``--check`` (and the tests) fail when one is out of date.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RULES_DIR = REPO / "monitoring" / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "monitoring" / "grafana" / "dashboards"
# The label the Grafana chart's sidecar looks for (its default sidecar.dashboards.label).
DASHBOARD_LABEL = "grafana_dashboard"
HEADER = "# Written by `python -m k8s generate` from {source}: change that, then run it again.\n"


class _Literal(str):
    """A multi-line string written as a YAML block, so the file reads like its source."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def _dump(documents: list[dict], source: str) -> str:
    body = yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return HEADER.format(source=source) + body


def pipelines() -> str:
    from streaming import pipelines as found

    data = {path.name: _Literal(path.read_text()) for path in found.every()}
    return _dump([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kappa-pipelines"}, "data": data}],
                 "the pipeline files (streaming/pipelines/*.toml and streaming.pipelines_dir)")


def prometheus_rules() -> str:
    from kappa.settings import get_settings
    from monitoring import runbook

    groups = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    base = get_settings().prometheus.runbook_url
    if base:
        groups = runbook.rebased(groups, base)
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "kappa-rules", "labels": {"app.kubernetes.io/component": "monitoring"}},
            "spec": {"groups": groups}}
    return _dump([rule], "monitoring/prometheus/rules/*.yml")


def dashboards() -> str:
    documents = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        json.loads(path.read_text())  # a broken dashboard fails here, not in Grafana
        documents.append({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": f"{path.stem}-dashboard", "labels": {DASHBOARD_LABEL: "1"},
                                       "annotations": {"grafana_folder": "Kappa"}},
                          "data": {path.name: _Literal(path.read_text())}})
    return _dump(documents, "monitoring/grafana/dashboards/*.json")


GENERATED = {
    HERE / "base" / "streaming" / "pipelines.yaml": pipelines,
    HERE / "base" / "monitoring" / "prometheus-rules.yaml": prometheus_rules,
    HERE / "base" / "monitoring" / "dashboards.yaml": dashboards,
}


def stale() -> list[Path]:
    """The generated files whose content is not what their sources make today."""
    return [path for path, make in GENERATED.items() if not path.exists() or path.read_text() != make()]


def write() -> list[Path]:
    written = []
    for path, make in GENERATED.items():
        text = make()
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written
