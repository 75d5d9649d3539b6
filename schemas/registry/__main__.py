"""``python -m schemas.registry``: an alias of ``kappa registry``."""
import sys

from kappa.cli import alias

sys.exit(alias("schemas.registry", ["registry"]))
