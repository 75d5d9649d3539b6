"""What a job says when a batch fails: which server, where, which sink and table, which batch.

A sink's failure happens on an executor and reaches the driver as text inside Spark's exception,
under the query plan. The restart decision does not read that text: the job restarts from its
checkpoint whatever failed (bounded by ``max_restarts``). The text is only mined for the one line
that :class:`~streaming.stores.base.SinkUnavailable` wrote, and the driver probes the job's servers
itself, so the last line of the log says what is down in words a person can act on.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from kappa.errors import Unavailable
from kappa.settings import Settings
from streaming import stores
from streaming.stores.base import Endpoint

_SINK_UNAVAILABLE = re.compile(r"SinkUnavailable: (.+)")
# "Caused by: org.postgresql.util.PSQLException: FATAL: ..." / "psycopg2.OperationalError: ..."
_EXCEPTION_LINE = re.compile(r"^\s*(?:Caused by: )?([A-Za-z_][\w.$]*(?:Exception|Error)): (.+)$")
_WRAPPERS = ("org.apache.spark.", "py4j.", "pyspark.", "java.util.concurrent.", "StreamingQueryException",
             "Py4JJavaError", "java.lang.reflect.")


class ServerUnavailable(Unavailable, RuntimeError):
    """A server the job needs did not answer (raised in the driver, e.g. the registry at start)."""

    def __init__(self, endpoint: Endpoint, doing: str, cause: BaseException) -> None:
        super().__init__(f"{endpoint.name} at {endpoint.address} ({endpoint.setting}) did not answer while "
                         f"{doing}: {type(cause).__name__}: {cause}")
        self.endpoint = endpoint


def endpoints(settings: Settings, sinks: list[str], reference: bool) -> list[Endpoint]:
    """The servers a job with these sinks talks to, Kafka and the registry first."""
    def host_port(address: str) -> tuple[str, int]:
        host, _, port = address.rpartition(":")
        return host, int(port)

    registry = urlsplit(settings.registry.url)
    found = [Endpoint("kafka", "kafka.bootstrap_servers", *host_port(settings.kafka.bootstrap_servers.split(",")[0])),
             Endpoint("schema registry", "registry.url", registry.hostname or "127.0.0.1",
                      registry.port or (443 if registry.scheme == "https" else 80))]
    # PostgreSQL also holds the pipelines' reference tables.
    found += [stores.get(name).endpoint(settings) for name in stores.names()
              if name in sinks or (name == "postgres" and reference)]
    return found


def describe(failure: BaseException, batch_id: int | None, servers: list[Endpoint]) -> str:
    """One line: what failed and what is unreachable now."""
    text = str(failure)
    sink = _SINK_UNAVAILABLE.findall(text)
    if sink:
        what = sink[-1].strip()
    elif isinstance(failure, ServerUnavailable):
        what = text
    else:
        causes = [m for m in (_EXCEPTION_LINE.match(line) for line in text.splitlines())
                  if m and not m.group(1).startswith(_WRAPPERS)]
        if causes:  # the deepest cause that is not Spark's own wrapping
            what = f"{causes[-1].group(1)}: {causes[-1].group(2).strip()[:300]}"
        else:
            first = next((line.strip() for line in text.splitlines() if line.strip()), "")
            what = f"{type(failure).__name__}: {first[:300]}"
    down = [f"{s.name} at {s.address} ({s.setting})" for s in servers if not s.reachable()]
    batch = f"batch {batch_id}" if batch_id is not None else "the query"
    return f"{batch} failed: {what}" + (f"; not answering now: {', '.join(down)}" if down else "")
