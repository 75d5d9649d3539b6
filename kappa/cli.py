"""``kappa``: the platform's one command line.

Each command's arguments are defined once, by the package that runs it (``add_commands`` in
``streaming/cli.py``, ``batch_replay/cli.py``, ``connectors/cli.py``, ``monitoring/cli.py``,
``schemas/cli.py``), and nothing heavy is imported until a command runs, so ``--help`` is instant.
The ``python -m <package>`` forms are aliases of these commands. Every command shares one error
policy (:func:`execute`): the platform's errors (:mod:`kappa.errors`) become an exit status and one
line on stderr; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from kappa import __version__
from kappa.errors import KappaError, Refused

REFUSED, FAILED, INTERRUPTED = 2, 1, 130
DESCRIPTION = "The Kappa platform's command line: pipelines, their replays and rebuilds, connectors, monitoring."
EXIT_STATUS = """exit status, the same for every command:
  0    done, or stopped by SIGTERM/SIGINT after the work in flight
  2    refused: bad input or configuration (the message says what to fix)
  1    failed: a server unavailable after retries, or a job that gave up (the message names it)
  130  interrupted before it could stop cleanly
  kappa rebuild --step check: 3 while the shadow job has not caught up"""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The packages whose add_commands(subparsers) define the commands, in the order --help lists them.
COMMAND_MODULES = ("streaming.cli", "batch_replay.cli", "connectors.cli", "monitoring.cli", "schemas.cli")


def log_level(value: str) -> str:
    """``--log-level``'s type everywhere: any case, one of :data:`LOG_LEVELS`."""
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a log level: one of {', '.join(LOG_LEVELS)} (any case)")
    return level


def add_log_level(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    parser.add_argument("--log-level", type=log_level, default=default, metavar="LEVEL",
                        help=f"debug, info, warning or error (default {default.lower()})")


def parser() -> argparse.ArgumentParser:
    """The whole command line (tests check the k8s manifests' and the DAGs' arguments against it)."""
    root = argparse.ArgumentParser(prog="kappa", description=DESCRIPTION, epilog=EXIT_STATUS,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--version", action="version", version=f"kappa {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(commands)
    return root


def execute(command_line: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` with ``command_line``, run the command it names (``args.run``) and map what it
    raised to the exit status: the one error policy of every entry point, ``python -m`` aliases too."""
    args = command_line.parse_args(argv)
    run: Callable[[argparse.Namespace], int | None] = args.run
    name = f"{command_line.prog} {args.command}" if getattr(args, "command", None) else command_line.prog
    try:
        return run(args) or 0
    except Refused as exc:
        _say(f"{name}: refused: {_message(exc)}")
        return REFUSED
    except KappaError as exc:
        _say(f"{name}: failed: {_message(exc)}")
        return FAILED
    except KeyboardInterrupt:
        _say(f"{name}: interrupted")
        return INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """The ``kappa`` console script."""
    return execute(parser(), argv)


def alias(module: str, prefix: Sequence[str] = ()) -> int:
    """``python -m <package>``: the kappa command ``prefix`` under that program name."""
    root = parser()
    root.prog = f"python -m {module}"
    return execute(root, [*prefix, *sys.argv[1:]])


def _say(line: str) -> None:
    """The command's last word: a log line once the process logs JSON (a long-running one), else
    plain text for the person at the terminal."""
    from kappa import logs

    if logs.process() is None:
        print(line, file=sys.stderr)
    else:
        logging.getLogger("kappa").error(line)


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
