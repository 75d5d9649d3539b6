"""The platform's own pipelines, one TOML file each (plus a Python module where configuration
cannot say it): ``customers`` (CDC of the shop's customers table) and ``orders`` (the shop API's
order events, enriched with the customers). ``kappa run orders`` (or the file's path).
"""
from __future__ import annotations

from pathlib import Path

from kappa.errors import Refused

HERE = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The pipeline file of one of the platform's pipelines."""
    return HERE / f"{name}.toml"


def find(name: str | Path) -> Path:
    """A pipeline file given as a path (``my/orders.toml``) or as a name here (``orders``)."""
    given = Path(name)
    if given.suffix == ".toml":
        if not given.is_file():
            raise Refused(f"pipeline file {given} does not exist")
        return given
    if not path(str(name)).is_file():
        known = sorted(p.stem for p in HERE.glob("*.toml"))
        raise Refused(f"unknown pipeline {str(name)!r}: give a pipeline file, or one of {known}")
    return path(str(name))
