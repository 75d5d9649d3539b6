"""``python -m streaming.migrations <pipeline>.toml [--namespace NS]``: an alias of ``kappa migrate``."""
import sys

from kappa.cli import alias

sys.exit(alias("streaming.migrations", ["migrate"]))
