"""``python -m streaming.migrations <pipeline>.toml [--namespace NS]``: apply a pipeline's missing migrations."""
import argparse
from pathlib import Path

from settings import get_settings
from streaming.jobs import pipeline
from streaming.migrations import APPLY, files

parser = argparse.ArgumentParser(description=__doc__.split(":", 1)[1].strip())
parser.add_argument("pipeline", type=Path)
parser.add_argument("--namespace", help="default: the pipeline's")
args = parser.parse_args()
p = pipeline.load(args.pipeline, **({"namespace": args.namespace} if args.namespace else {}))
if p.migrations is None:
    raise SystemExit(f"pipeline {p.name} has no migrations (its file sets no 'migrations' folder)")
for store in (s for s in APPLY if s in p.sinks and files(p.migrations, s)):
    versions = APPLY[store](get_settings(), p.namespace, p.name, p.migrations)
    print(f"{store}: {'applied ' + ', '.join(versions) if versions else 'up to date'}")
