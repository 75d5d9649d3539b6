"""``python -m connectors.api --config FILE``: an alias of ``kappa connector api``."""
import sys

from kappa.cli import alias

sys.exit(alias("connectors.api", ["connector", "api"]))
