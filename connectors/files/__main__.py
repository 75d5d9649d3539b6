"""``python -m connectors.files --config FILE``: an alias of ``kappa connector files``."""
import sys

from kappa.cli import alias

sys.exit(alias("connectors.files", ["connector", "files"]))
