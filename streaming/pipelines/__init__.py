"""The platform's own pipelines, one TOML file each (plus a Python module where configuration
cannot say it): ``customers`` (CDC of the shop's customers table) and ``orders`` (the shop API's
order events, enriched with the customers). ``kappa run streaming/pipelines/orders.toml``.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The pipeline file of one of the platform's pipelines."""
    return HERE / f"{name}.toml"
