"""``python -m monitoring lag-exporter``: an alias of ``kappa lag-exporter``.
``python -m monitoring dashboards``: write the Grafana dashboards' JSON from their code (development).
``python -m monitoring preview``: draw each dashboard's panels from a Prometheus (development)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kappa.cli import execute
from monitoring import cli


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitoring", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cli.add_commands(commands)
    dashboards = commands.add_parser("dashboards",
                                     help="write monitoring/grafana/dashboards/*.json from monitoring/grafana/dashboards.py")
    dashboards.set_defaults(run=_dashboards)
    preview = commands.add_parser("preview", help="draw each dashboard's panels from a Prometheus into PNG files")
    preview.add_argument("--prometheus", help="the Prometheus to query (default: settings' prometheus.url)")
    preview.add_argument("--minutes", type=float, default=30, help="how far back (default 30)")
    preview.add_argument("--out", type=Path, default=Path("docs/dashboards"), help="the folder for the PNGs")
    preview.set_defaults(run=_preview)
    return parser


def _preview(args: argparse.Namespace) -> int:
    from kappa.settings import get_settings
    from monitoring.grafana import preview as pictures

    for path in pictures.render_all(args.prometheus or get_settings().prometheus.url, args.out, args.minutes):
        print(f"wrote {path}")
    return 0


def _dashboards(args: argparse.Namespace) -> int:
    from monitoring.grafana import dashboards

    for path in dashboards.write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(execute(parser(), sys.argv[1:]))
