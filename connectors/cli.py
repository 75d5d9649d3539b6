"""``kappa connector api|cdc|files --config FILE``: a source connector, until SIGTERM.

Each kind is its package's connector class and config model; the process around it (config file,
JSON logs, metrics endpoint, stop flag) is :func:`connectors.runtime.run`."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from kappa.cli import add_log_level

# kind -> (module, config model, connector class, what it does)
KINDS = {
    "api": ("connectors.api.connector", "ApiConfig", "ApiConnector",
            "Poll an HTTP JSON API and publish its records to Kafka as Avro"),
    "cdc": ("connectors.cdc.connector", "CdcConfig", "CdcConnector",
            "PostgreSQL change data capture to Kafka (Debezium envelope, Avro)"),
    "files": ("connectors.files.connector", "FilesConfig", "FilesConnector",
              "Publish rows of CSV, JSON Lines and Parquet files to Kafka as Avro"),
}


def add_commands(commands: argparse._SubParsersAction) -> None:
    connector = commands.add_parser("connector", help="run a source connector until stopped",
                                    description="Run a source connector until SIGTERM/SIGINT: it finishes its batch, "
                                                "commits its source position and exits 0.")
    kinds = connector.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, (_module, _config, _cls, description) in KINDS.items():
        command = kinds.add_parser(kind, help=description.lower(), description=description)
        command.add_argument("--config", type=Path, required=True, help=f"the connector's TOML file "
                                                                         f"(e.g. connectors/{kind}/example.toml)")
        add_log_level(command)
        command.set_defaults(run=_run)


def model(kind: str) -> tuple[type, type]:
    """The (config model, connector class) of a connector kind."""
    module, config, cls, _ = KINDS[kind]
    loaded = importlib.import_module(module)
    return getattr(loaded, config), getattr(loaded, cls)


def _run(args: argparse.Namespace) -> int:
    from connectors.runtime import run

    config, cls = model(args.kind)
    run(args.config, args.log_level, config, cls)
    return 0
