"""AWS Lambda entry point for S3 ``ObjectCreated`` notifications: the file connector, event-driven.

Deploy with the handler ``connectors.files.lambda_handler.handler`` and ``KAPPA_FILES__CONFIG``
naming the same TOML config as the watcher (same ``name``, so the same manifest): an object
published by either path is skipped by the other. The platform's endpoints come from the usual
``KAPPA_*`` settings. Each invocation uses its own transactional id, since invocations run
concurrently; a watcher and a notification racing on one object within the same seconds can both
publish it, with identical event_ids.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from connectors.files.connector import FilesConfig, FilesConnector
from connectors.files.sources import S3Prefix
from connectors.runtime import load_config
from kappa.settings import get_settings

log = logging.getLogger(__name__)
_connector: FilesConnector | None = None  # kept across warm invocations


def _get_connector() -> FilesConnector:
    global _connector
    if _connector is None:
        path = os.environ.get("KAPPA_FILES__CONFIG")
        if not path:
            raise RuntimeError("set KAPPA_FILES__CONFIG to the file connector's TOML config")
        config = load_config(Path(path), FilesConfig)
        _connector = FilesConnector(config, get_settings(), transactional_id=f"kappa-connector-{config.name}-lambda-{uuid.uuid4()}")
    return _connector


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Publish each created object named by the notification; returns what was published and skipped."""
    connector = _get_connector()
    connector.manifest.refresh()
    published, skipped = [], []
    for record in event.get("Records", []):
        if not record.get("eventName", "").startswith("ObjectCreated:"):
            continue
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])  # S3 event keys are URL-encoded
        source = S3Prefix(connector.s3, bucket, "", connector.config.patterns, connector.settings.s3.endpoint)
        stat = connector.s3.stat_object(bucket, key)      # the object as it is now, not as notified
        ref = source.ref(key, stat.size, stat.etag, stat.last_modified)
        if ref is None:
            skipped.append({"uri": f"s3://{bucket}/{key}", "why": "not a configured pattern/format"})
        elif connector.publish(source, ref):
            published.append(ref.uri)
        else:
            skipped.append({"uri": ref.uri, "why": "already in the manifest"})
    log.info("lambda invocation", extra={"published": published, "skipped": skipped})
    return {"published": published, "skipped": skipped}
