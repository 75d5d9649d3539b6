"""Fixed ports of the local stack.

Each is its product's default moved into a range of its own (mostly 1xxxx), so a developer's own
Kafka, PostgreSQL or Cassandra on the usual ports keeps running beside the stack. A clash can
still be moved with ``KAPPA_PORT_<NAME>`` (e.g. ``KAPPA_PORT_KAFKA=29092``); the settings layer's
defaults follow, so clients find the moved server. README.md lists them.
"""
import os


def _port(name: str, default: int) -> int:
    value = os.environ.get(f"KAPPA_PORT_{name}")
    if value is None:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"KAPPA_PORT_{name}={value!r} is not a TCP port number")
    return int(value)


KAFKA = _port("KAFKA", 19092)
KAFKA_CONTROLLER = _port("KAFKA_CONTROLLER", 19093)
SCHEMA_REGISTRY = _port("SCHEMA_REGISTRY", 18081)
CASSANDRA_CQL = _port("CASSANDRA_CQL", 19042)
CASSANDRA_STORAGE = _port("CASSANDRA_STORAGE", 17000)
S3 = _port("S3", 18333)
# SeaweedFS runs master, volume, filer, admin and S3 servers in one process; each also has a gRPC
# port at its HTTP port + SEAWEED_GRPC_OFFSET.
SEAWEED_MASTER = _port("SEAWEED_MASTER", 19333)
SEAWEED_VOLUME = _port("SEAWEED_VOLUME", 18080)
SEAWEED_FILER = _port("SEAWEED_FILER", 18888)
SEAWEED_ADMIN = _port("SEAWEED_ADMIN", 18646)
SEAWEED_METRICS = _port("SEAWEED_METRICS", 19327)
SEAWEED_GRPC_OFFSET = 10000
CLICKHOUSE_HTTP = _port("CLICKHOUSE_HTTP", 18123)
POSTGRES = _port("POSTGRES", 15432)
PROMETHEUS = _port("PROMETHEUS", 19090)
ALERTMANAGER = _port("ALERTMANAGER", 19193)      # 9093 moved past the Kafka controller's 19093
ALERT_WEBHOOK = _port("ALERT_WEBHOOK", 19194)    # where the local Alertmanager sends alerts (any receiver)
AIRFLOW = _port("AIRFLOW", 18280)              # the api-server (UI, REST API); 8080 moved past SeaweedFS's 18080
# Not a server of the stack: the platform's lag exporter (python -m monitoring lag-exporter), kafka_exporter's 9308 moved.
LAG_EXPORTER = _port("LAG_EXPORTER", 19308)
# Not a server either: a replay's /metrics while it runs (make backfill; python -m batch_replay --metrics-port).
REPLAY_METRICS = _port("REPLAY_METRICS", 19309)
