"""``python -m batch_replay ...``: an alias of ``kappa backfill`` (see :mod:`batch_replay.cli`)."""
import sys

from kappa.cli import alias

sys.exit(alias("batch_replay", ["backfill"]))
