"""``kappa registry``: serve the Confluent-compatible schema registry (its schemas kept in a Kafka
topic, :mod:`schemas.registry.store`), with the endpoints of the platform's settings."""
from __future__ import annotations

import argparse

from kappa.cli import add_log_level


def add_commands(commands: argparse._SubParsersAction) -> None:
    registry = commands.add_parser("registry", help="serve the Confluent-compatible schema registry",
                                   description="The Confluent-compatible Avro schema registry, its schemas kept in "
                                               "a Kafka topic (the settings' registry.topic).")
    registry.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    registry.add_argument("--port", type=int,
                          help="the port to listen on (default: the port of the settings' registry.url)")
    add_log_level(registry)
    registry.set_defaults(run=_registry)


def _registry(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from kappa.settings import get_settings
    from schemas.registry.app import create_app
    from schemas.registry.store import Store

    settings = get_settings()
    port = args.port or int(settings.registry.url.rsplit(":", 1)[1].split("/")[0])
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store = Store(settings.kafka.bootstrap_servers, settings.registry.topic,
                  settings.registry.default_compatibility, settings.kafka.client_config)
    store.start()
    try:
        uvicorn.run(create_app(store), host=args.host, port=port, log_level="warning", access_log=False)
    finally:
        store.close()
    return 0
