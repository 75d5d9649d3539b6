"""Where the stack keeps its state: one git-ignored folder, ``.stack/`` by default (the settings'
local state folder, :func:`kappa.settings.paths.state_dir`)."""
from __future__ import annotations

from pathlib import Path

from kappa.settings.paths import CHECKOUT as REPO_ROOT
from kappa.settings.paths import state_dir

STACK_DIR = Path(__file__).resolve().parent


def stack_home() -> Path:
    """Data, logs, pid files and resolved classpaths of every service (``$KAPPA_STACK__HOME``)."""
    return state_dir()


def service_dir(name: str) -> Path:
    return stack_home() / name
