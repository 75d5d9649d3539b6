"""``kappa lag-exporter``: serve the streaming jobs' consumer lag on /metrics, measured from outside
them at each scrape (:mod:`monitoring.exporter`); ``kappa status``: the same, and more, once, for a
person or a script (:mod:`monitoring.status`). The dashboards' development commands (write their
JSON, draw previews) are ``python -m monitoring dashboards|preview``."""
from __future__ import annotations

import argparse
import signal
import threading

from kappa.cli import add_log_level
from kappa.settings import ports


def add_commands(commands: argparse._SubParsersAction) -> None:
    lag = commands.add_parser("lag-exporter", help="serve the pipelines' consumer lag on /metrics",
                              description="The pipelines' consumer lag, measured at each scrape from their "
                                          "checkpoints and the topics' end offsets.")
    add_lag_exporter_arguments(lag)
    lag.set_defaults(run=_lag_exporter)

    status = commands.add_parser("status", help="each pipeline's query: running, lag, last batch, serving version",
                                 description="Each pipeline's live query: whether its job runs, its lag in events "
                                             "and seconds, its last batch and the serving version readers see; "
                                             "exit 1 when a pipeline could not be measured.")
    status.add_argument("--pipeline", action="append",
                        help="a pipeline's name or file (repeat it; default: every pipeline)")
    status.add_argument("--json", action="store_true", help="a JSON list, for scripts")
    status.set_defaults(run=_status)


def add_lag_exporter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", action="append",
                        help="a pipeline's name or file (repeat it; default: every pipeline, streaming.pipelines_dir's "
                             "and the platform's own)")
    parser.add_argument("--metrics-port", "--port", dest="port", type=int, default=ports.LAG_EXPORTER,
                        metavar="PORT", help=f"the /metrics port (default {ports.LAG_EXPORTER})")
    parser.add_argument("--host", help="the address to listen on (default: the settings' metrics.host; 0.0.0.0 in a "
                                       "pod)")
    add_log_level(parser)


def _lag_exporter(args: argparse.Namespace) -> int:
    from kappa import logs
    from kappa.settings import get_settings
    from monitoring import endpoint, exporter, targets
    from streaming import pipelines

    logs.configure("exporter", "lag-exporter", args.log_level)
    files = [pipelines.find(name) for name in args.pipeline] if args.pipeline else pipelines.every()
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


def _status(args: argparse.Namespace) -> int:
    from kappa.settings import get_settings
    from monitoring import status
    from streaming import pipelines

    files = [pipelines.find(name) for name in args.pipeline] if args.pipeline else pipelines.every()
    statuses = status.measure(get_settings(), files)
    print(status.as_json(statuses) if args.json else status.table(statuses))
    return 1 if any(s.problem for s in statuses) else 0
