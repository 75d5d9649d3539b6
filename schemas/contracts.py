"""The Avro contracts in ``schemas/avro/``: one ``<topic>.avsc`` per event type.

A contract's file name is its topic (``<domain>.<source>.<entity>``); its registry subject is
``<topic>-value`` (TopicNameStrategy). Per-subject compatibility levels other than the registry's
default (BACKWARD) are set in ``schemas/subjects.toml``.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from schemas.serde import subject_for

CONTRACTS_DIR = Path(__file__).resolve().parent / "avro"
SUBJECTS_FILE = Path(__file__).resolve().parent / "subjects.toml"


@dataclass(frozen=True)
class Contract:
    topic: str
    path: Path
    schema: str

    @property
    def subject(self) -> str:
        return subject_for(self.topic)

    @property
    def fields(self) -> list[dict]:
        return json.loads(self.schema)["fields"]


def load(directory: Path = CONTRACTS_DIR) -> list[Contract]:
    return [Contract(path.stem, path, path.read_text()) for path in sorted(directory.glob("*.avsc"))]


def contract(topic: str, directory: Path = CONTRACTS_DIR) -> Contract:
    path = directory / f"{topic}.avsc"
    if not path.exists():
        known = ", ".join(c.topic for c in load(directory)) or "none"
        raise FileNotFoundError(f"no contract {path}: the topic {topic!r} has no .avsc (known: {known})")
    return Contract(topic, path, path.read_text())


def from_file(path: Path, topic: str) -> Contract:
    """A contract kept outside ``schemas/avro`` (e.g. one ``kappa new`` wrote), for ``topic``."""
    if not path.exists():
        raise FileNotFoundError(f"no contract {path} (for topic {topic!r})")
    return Contract(topic, path, path.read_text())


def compatibility_levels(path: Path = SUBJECTS_FILE) -> dict[str, str]:
    """Subject -> level for subjects that do not use the registry default."""
    if not path.exists():
        return {}
    return {subject: str(conf["compatibility"]).upper()
            for subject, conf in tomllib.loads(path.read_text()).items()}


def missing_docs(schema: dict | list | str, where: str = "") -> list[str]:
    """Paths of record fields without a ``doc`` (every field of a contract must say what it is)."""
    problems: list[str] = []
    if isinstance(schema, list):
        for branch in schema:
            problems += missing_docs(branch, where)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for field in schema.get("fields", []):
                path = f"{where}{schema.get('name')}.{field['name']}"
                if not str(field.get("doc", "")).strip():
                    problems.append(path)
                problems += missing_docs(field["type"], f"{path}/")
        elif schema.get("type") == "array":
            problems += missing_docs(schema.get("items"), where)
        elif schema.get("type") == "map":
            problems += missing_docs(schema.get("values"), where)
    return problems
