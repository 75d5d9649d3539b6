"""Where the platform finds pipelines, and its own: ``customers`` (CDC of the shop's customers table)
and ``orders`` (the shop API's order events, enriched with the customers), one TOML file each (plus
a Python module where configuration cannot say it).

A pipeline is named by its file's stem. Every command that takes a pipeline by name (``kappa run``,
``backfill``, ``rebuild``, ``versions``, ``migrate``, the lag exporter, ``make k8s-generate``) looks
in the same folders: the one the settings name (``streaming.pipelines_dir``, where ``kappa new``
writes), then this package's. A name in both is the settings folder's.
"""
from __future__ import annotations

from pathlib import Path

from kappa.errors import Refused
from kappa.settings import Settings, get_settings

HERE = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The pipeline file of one of the platform's own pipelines."""
    return HERE / f"{name}.toml"


def folders(settings: Settings | None = None) -> list[Path]:
    """The folders pipelines are found in, first match wins."""
    configured = (settings or get_settings()).streaming.pipelines_dir
    return [Path(configured).expanduser(), HERE] if configured else [HERE]


def home(settings: Settings | None = None) -> Path:
    """Where a new pipeline file goes: the settings' folder, or this package's when none is set."""
    return folders(settings)[0]


def every(settings: Settings | None = None) -> list[Path]:
    """Every pipeline file, one per name (the default of replay, the lag exporter and k8s generation)."""
    found: dict[str, Path] = {}
    for folder in folders(settings):
        for file in sorted(folder.glob("*.toml")):
            found.setdefault(file.stem, file)
    return [found[name] for name in sorted(found)]


def find(name: str | Path, settings: Settings | None = None) -> Path:
    """A pipeline file given as a path (``my/orders.toml``) or as a name (``orders``)."""
    given = Path(name)
    if given.suffix == ".toml":
        if not given.is_file():
            raise Refused(f"pipeline file {given} does not exist")
        return given
    for folder in folders(settings):
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    known = sorted(p.stem for p in every(settings))
    where = " or ".join(str(f) for f in folders(settings))
    raise Refused(f"unknown pipeline {str(name)!r} (looked in {where}; the folder of yours is the setting "
                  f"KAPPA_STREAMING__PIPELINES_DIR): give a pipeline file, or one of {known}")
