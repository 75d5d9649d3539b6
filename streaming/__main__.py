"""``python -m streaming run|new|migrate ...``: an alias of ``kappa`` (see :mod:`streaming.cli`)."""
import sys

from kappa.cli import alias

sys.exit(alias("streaming"))
