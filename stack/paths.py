"""Where the stack keeps its state: one git-ignored folder, ``.stack/`` by default."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = Path(__file__).resolve().parent


def stack_home() -> Path:
    """Data, logs, pid files and resolved classpaths of every service (``$KAPPA_STACK_HOME``)."""
    return Path(os.environ.get("KAPPA_STACK_HOME", REPO_ROOT / ".stack")).resolve()


def service_dir(name: str) -> Path:
    return stack_home() / name
