"""Where the local Prometheus finds a platform process: a file-discovery target file per process.

The stack's Prometheus (``stack/conf/prometheus/prometheus.yml``, scrape job ``platform``) reads
``$KAPPA_PROMETHEUS__TARGETS_DIR`` (default ``.stack/prometheus/targets``) every 5 s. A process that
serves /metrics writes ``<name>.json`` there and removes it when it exits, so a stopped process is
no longer a target (its ``up`` series ends). A target's ``job`` is its kind (``pipeline``,
``connector``, ...); the metrics name their pipeline or connector themselves. On Kubernetes,
ServiceMonitors and PodMonitors do this instead.
"""
from __future__ import annotations

import atexit
import json
from pathlib import Path

from kappa.settings.paths import state_dir


def targets_dir() -> Path:
    from kappa.settings import get_settings

    configured = get_settings().prometheus.targets_dir
    if configured is not None:
        return Path(configured)
    return state_dir() / "prometheus" / "targets"


def announce(name: str, host: str, port: int, labels: dict[str, str]) -> Path | None:
    """Make ``host:port`` a target with ``labels`` while this process runs; the file, or None
    when there is no local Prometheus to tell."""
    folder = targets_dir()
    if not folder.is_dir():
        return None
    target = folder / f"{name}.json"
    target.write_text(json.dumps([{"targets": [f"{host}:{port}"], "labels": labels}]))
    atexit.register(target.unlink, missing_ok=True)
    return target
