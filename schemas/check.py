"""``make schemas-check``: validate every contract and register it under its subject's compatibility.

Each ``schemas/avro/<topic>.avsc`` must parse, say what every field is (``doc``), and be
compatible with what the registry already holds for ``<topic>-value`` under the subject's level
(BACKWARD unless ``schemas/subjects.toml`` says otherwise). Everything is checked before anything
is registered, and every problem is reported with the subject, the field and the rule.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import requests

from schemas import contracts
from schemas.registry.compatibility import InvalidSchema, canonical
from kappa.settings import get_settings

MEDIA = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


def check(directory: Path, registry_url: str, subject_prefix: str = "", register: bool = True,
          levels: dict[str, str] | None = None) -> list[str]:
    """Problems found (empty when all contracts pass); registers them when ``register`` and clean."""
    levels = contracts.compatibility_levels() if levels is None else levels
    problems: list[str] = []
    found = contracts.load(directory)
    if not found:
        return [f"no .avsc contracts in {directory}"]
    session = requests.Session()
    for contract in found:
        subject = subject_prefix + contract.subject
        try:
            canonical(contract.schema)
        except InvalidSchema as exc:
            problems.append(f"{subject} ({contract.path.name}): {exc}")
            continue
        problems += [f"{subject} ({contract.path.name}): field {path} has no doc (rule: every field says what it is)"
                     for path in contracts.missing_docs(json.loads(contract.schema))]
        level = levels.get(contract.subject)
        if level and register:
            response = session.put(f"{registry_url}/config/{subject}", json={"compatibility": level},
                                   headers=MEDIA, timeout=30)
            response.raise_for_status()
        response = session.post(f"{registry_url}/compatibility/subjects/{subject}/versions",
                                params={"verbose": "true"}, json={"schema": contract.schema},
                                headers=MEDIA, timeout=30)
        if response.status_code == 404:  # a new subject: nothing to be compatible with
            continue
        response.raise_for_status()
        answer = response.json()
        if not answer["is_compatible"]:
            applied = level or _level(session, registry_url, subject)
            for message in answer.get("messages") or ["incompatible"]:
                problems.append(f"{subject} ({contract.path.name}) is not {applied}-compatible with the "
                                f"registered versions: {message}")
    if problems or not register:
        return problems
    for contract in found:
        response = session.post(f"{registry_url}/subjects/{subject_prefix + contract.subject}/versions",
                                json={"schema": contract.schema}, headers=MEDIA, timeout=30)
        if not response.ok:
            problems.append(f"{subject_prefix + contract.subject}: registration failed: {response.text}")
    return problems


def _level(session: requests.Session, registry_url: str, subject: str) -> str:
    response = session.get(f"{registry_url}/config/{subject}", params={"defaultToGlobal": "true"}, timeout=30)
    return response.json().get("compatibilityLevel", "BACKWARD") if response.ok else "BACKWARD"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=contracts.CONTRACTS_DIR, help="folder of .avsc contracts")
    parser.add_argument("--registry", default=get_settings().registry.url)
    parser.add_argument("--subject-prefix", default="", help="prefix every subject (isolated checks)")
    parser.add_argument("--dry-run", action="store_true", help="check only; register nothing")
    args = parser.parse_args(argv)
    try:
        problems = check(args.dir, args.registry, args.subject_prefix, register=not args.dry_run)
    except requests.RequestException as exc:
        print(f"schemas-check: the registry at {args.registry} did not answer ({exc}); "
              "run `make up` or set KAPPA_REGISTRY__URL", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"schemas-check: {problem}", file=sys.stderr)
    if problems:
        return 1
    count = len(contracts.load(args.dir))
    print(f"schemas-check: {count} contract(s) {'compatible' if args.dry_run else 'registered'} at {args.registry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
