"""``python -m kappa``: the ``kappa`` command without its console script (a checkout, the image).

spark-submit runs this file by its path (the SparkApplications' ``mainApplicationFile``), which
puts this package's own folder first on ``sys.path``; the folder that holds the package goes there
instead, so ``kappa.settings`` is never importable as a top-level ``settings``."""
import sys
from pathlib import Path

if not __package__:  # run as a file, not with -m
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from kappa.cli import main  # noqa: E402 (after the path fix above)

sys.exit(main())
