"""``python -m monitoring lag-exporter``: serve the streaming jobs' consumer lag on /metrics.
``python -m monitoring dashboards``: write the Grafana dashboards' JSON from their code."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from settings import ports


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m monitoring`` (also what tests check the k8s/ manifests' arguments with)."""
    parser = argparse.ArgumentParser(prog="python -m monitoring", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lag = commands.add_parser("lag-exporter", help="the streaming jobs' consumer lag, measured at each scrape")
    lag.add_argument("--pipeline", type=Path, action="append",
                     help="a pipeline file (repeat it; default: every file in streaming/pipelines)")
    lag.add_argument("--port", type=int, default=ports.LAG_EXPORTER,
                     help=f"the /metrics port (default {ports.LAG_EXPORTER})")
    lag.add_argument("--host", help="the address to listen on (default: the settings' metrics.host; 0.0.0.0 in a pod)")
    commands.add_parser("dashboards", help="write monitoring/grafana/dashboards/*.json from monitoring/grafana/dashboards.py")
    preview = commands.add_parser("preview", help="draw each dashboard's panels from a Prometheus into PNG files")
    preview.add_argument("--prometheus", help="the Prometheus to query (default: settings' prometheus.url)")
    preview.add_argument("--minutes", type=float, default=30, help="how far back (default 30)")
    preview.add_argument("--out", type=Path, default=Path("docs/dashboards"), help="the folder for the PNGs")
    preview.add_argument("--scenario", action="store_true",
                         help="first run the preview scenario on the local stack (monitoring/grafana/scenario.py: "
                              "the orders job runs, stops while events arrive, restarts), then draw that stretch")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "preview":
        from monitoring.grafana import preview as pictures
        from settings import get_settings

        minutes = args.minutes
        if args.scenario:
            from monitoring.grafana import scenario

            minutes = scenario.run() / 60 + 0.5
        for path in pictures.render_all(args.prometheus or get_settings().prometheus.url, args.out, minutes):
            print(f"wrote {path}")
        return 0
    if args.command == "dashboards":
        from monitoring.grafana import dashboards

        for path in dashboards.write():
            print(f"wrote {path}")
        return 0

    from connectors.runtime import configure_logging
    from monitoring import endpoint, exporter, targets
    from settings import get_settings
    from streaming import pipelines

    configure_logging("lag-exporter", "INFO")
    files = args.pipeline or sorted(pipelines.HERE.glob("*.toml"))
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        print(f"python -m monitoring lag-exporter: no pipeline file {', '.join(missing)}", file=sys.stderr)
        return 1
    settings = get_settings()
    host = args.host or settings.metrics.host
    exporter.register(settings, files)
    endpoint.serve(args.port, host, endpoint.Health.passive())
    targets.announce(f"lag-exporter-{args.port}", endpoint.announced_host(host), args.port, {"job": "lag-exporter"})
    print(f"lag of {', '.join(f.stem for f in files)} on http://{host}:{args.port}/metrics", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
