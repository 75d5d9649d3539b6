"""``python -m stack {up|status|down|clean} [service ...]``: the local stack's command line.

``python -m stack airflow <args>`` runs Airflow's CLI against the stack's Airflow, e.g. ``airflow
dags trigger backfill --conf '{"from": "2026-12-01"}'``.

``python -m stack k8s-tools`` provisions what ``python -m k8s validate`` runs (kustomize,
kubectl-validate, the operators' CRDs) from the Go module proxy.

``python -m stack kafka-tool <tool> <args>`` runs one of Kafka's admin tools (what the release
tarball's ``bin/kafka-<tool>.sh`` runs) from the stack's jars, e.g. ``kafka-tool consumer-groups
--describe --group orders``."""
from __future__ import annotations

import argparse
import sys

from stack import lifecycle
from stack.process import ServiceError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["kafka-tool"]:
        return _kafka_tool(argv[1:])
    if argv[:1] == ["airflow"] and argv[1:]:
        return _airflow_cli(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("command", choices=["up", "status", "down", "clean", "k8s-tools"])
    parser.add_argument("services", nargs="*", help="only these services (and what they depend on)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            failures = lifecycle.up(args.services)
            for failure in failures:
                print(f"\nERROR: {failure}", file=sys.stderr)
            return 1 if failures else 0
        if args.command == "down":
            lifecycle.down(args.services)
            return 0
        if args.command == "clean":
            lifecycle.clean()
            return 0
        if args.command == "k8s-tools":
            from stack import k8s_tools

            k8s_tools.provision()
            return 0
        rows = lifecycle.status(args.services)
        print(f"{'service':<16} {'state':<6} {'port':<6} {'pid':<8} log")
        for row in rows:
            print(f"{row.name:<16} {'up' if row.up else 'down':<6} {row.port:<6} {row.pid or '-':<8} {row.log_file}")
        return 0 if all(r.up for r in rows) else 3
    except ServiceError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


def _airflow_cli(argv: list[str]) -> int:
    """``python -m stack airflow <args>``: Airflow's own CLI against the stack's Airflow (its venv and settings)."""
    import os
    import subprocess

    from stack.airflow import Airflow, venv

    service = Airflow()
    if not (service.home / "secrets.json").exists():
        print("ERROR: the local Airflow was never started: python -m stack up airflow (make airflow)", file=sys.stderr)
        return 1
    return subprocess.run([str(venv() / "bin" / "airflow"), *argv],
                          env={**os.environ, **service.environment()}).returncode


def _kafka_tool(argv: list[str]) -> int:
    import subprocess

    from stack.kafka import TOOLS, tool_command

    if not argv or argv[0] in ("-h", "--help"):
        print(f"python -m stack kafka-tool <tool> <args>: tools {', '.join(TOOLS)}; --bootstrap-server defaults "
              "to the stack's broker")
        return 0 if argv else 2
    try:
        return subprocess.run(tool_command(argv[0], argv[1:])).returncode
    except ServiceError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
