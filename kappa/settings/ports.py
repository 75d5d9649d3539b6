"""The local defaults' ports: where the development stack serves what the platform's clients talk to.

Each is its product's default moved into a range of its own (mostly 1xxxx), so a developer's own
Kafka, PostgreSQL or Cassandra on the usual ports keeps running beside the stack. A clash can
still be moved with ``KAPPA_PORTS__<NAME>`` (e.g. ``KAPPA_PORTS__KAFKA=29092``): the stack serves there
(``stack/`` reads these), and the settings' defaults follow, so clients find the moved server.
README.md lists them. Production sets the endpoints themselves (``KAPPA_KAFKA__BOOTSTRAP_SERVERS``, ...).
"""
import os

NAMES: set[str] = set()  # every port's name: the fields of the settings group ``ports``


def port(name: str, default: int) -> int:
    """``$KAPPA_PORTS__<name>``, else ``default``."""
    NAMES.add(name)
    value = os.environ.get(f"KAPPA_PORTS__{name}")
    if value is None:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"KAPPA_PORTS__{name}={value!r} is not a TCP port number")
    return int(value)


KAFKA = port("KAFKA", 19092)
SCHEMA_REGISTRY = port("SCHEMA_REGISTRY", 18081)
CASSANDRA_CQL = port("CASSANDRA_CQL", 19042)
S3 = port("S3", 18333)
CLICKHOUSE_HTTP = port("CLICKHOUSE_HTTP", 18123)
POSTGRES = port("POSTGRES", 15432)
PROMETHEUS = port("PROMETHEUS", 19090)
# Not servers of the stack: the platform's own /metrics defaults.
LAG_EXPORTER = port("LAG_EXPORTER", 19308)      # kappa lag-exporter (kafka_exporter's 9308 moved)
REPLAY_METRICS = port("REPLAY_METRICS", 19309)  # a replay's /metrics while it runs (make backfill)
