"""The platform's shared base: its command line (``kappa``), its settings and its error root.

Everything else lives in the concept folders (``streaming``, ``connectors``, ``batch_replay``,
``schemas``, ``monitoring``); this package is what they all import, and it imports none of them
when it loads."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kappa-platform")
except PackageNotFoundError:  # a checkout run without installing it (python -m from the repo)
    __version__ = "0+unknown"
