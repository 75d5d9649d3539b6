"""Where an alert's ``runbook_url`` points: its section of docs/runbook.md, as an absolute URL that a
pager, a chat message or Alertmanager's UI can open.

The rule files keep the link relative to the repository (``docs/runbook.md#<alert>``), so their
promtool tests read the same in every checkout; where the rules are deployed (the local stack's
Prometheus, ``python -m k8s generate``) the link is rebased on the setting
``prometheus.runbook_url`` (``KAPPA_PROMETHEUS__RUNBOOK_URL``): the runbook's address as your
on-call opens it (your forge's view of the file, a wiki page).
"""
from __future__ import annotations

import copy
from typing import Any

from kappa.settings import Settings
from kappa.settings.paths import CHECKOUT

RELATIVE = "docs/runbook.md"  # how the rule files name it
IN_CHECKOUT = CHECKOUT / RELATIVE


def base_url(settings: Settings) -> str:
    """The setting, else the runbook of this checkout as a ``file://`` URL (the local stack's
    alerts are read on the machine that runs it)."""
    return settings.prometheus.runbook_url or IN_CHECKOUT.as_uri()


def rebased(groups: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
    """The rule groups with every ``runbook_url`` under ``docs/runbook.md`` moved to ``base``."""
    groups = copy.deepcopy(groups)
    for group in groups:
        for rule in group.get("rules", []):
            annotations = rule.get("annotations") or {}
            link = annotations.get("runbook_url", "")
            if link.startswith(RELATIVE):
                annotations["runbook_url"] = base.rstrip("#") + link[len(RELATIVE):]
    return groups
