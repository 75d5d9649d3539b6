"""``python -m schemas.registry``: serve the registry (settings from the platform's settings layer)."""
from __future__ import annotations

import argparse
import logging

import uvicorn

from schemas.registry.app import create_app
from schemas.registry.store import Store
from settings import get_settings


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="Confluent-compatible Avro schema registry")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(settings.registry.url.rsplit(":", 1)[1].split("/")[0]))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store = Store(settings.kafka.bootstrap_servers, settings.registry.topic,
                  settings.registry.default_compatibility, settings.kafka.client_config)
    store.start()
    try:
        uvicorn.run(create_app(store), host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        store.close()


if __name__ == "__main__":
    main()
