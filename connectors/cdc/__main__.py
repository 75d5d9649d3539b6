"""``python -m connectors.cdc --config FILE``: an alias of ``kappa connector cdc``."""
import sys

from kappa.cli import alias

sys.exit(alias("connectors.cdc", ["connector", "cdc"]))
