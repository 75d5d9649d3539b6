"""Fixed ports of the local stack: the servers the platform's clients talk to are the settings'
local defaults (``kappa/settings/ports.py``, read from there); the rest are the stack's own (a server's
second port, the SeaweedFS parts, Alertmanager, Airflow). ``KAPPA_PORTS__<NAME>`` moves any of them.
README.md lists them.
"""
from kappa.settings.ports import (  # noqa: F401 (the stack's servers listen where the clients look)
    CASSANDRA_CQL,
    CLICKHOUSE_HTTP,
    KAFKA,
    LAG_EXPORTER,
    POSTGRES,
    PROMETHEUS,
    REPLAY_METRICS,
    S3,
    SCHEMA_REGISTRY,
    NAMES,
    port,
)

KAFKA_CONTROLLER = port("KAFKA_CONTROLLER", 19093)
CASSANDRA_STORAGE = port("CASSANDRA_STORAGE", 17000)
# SeaweedFS runs master, volume, filer, admin and S3 servers in one process; each also has a gRPC
# port at its HTTP port + SEAWEED_GRPC_OFFSET.
SEAWEED_MASTER = port("SEAWEED_MASTER", 19333)
SEAWEED_VOLUME = port("SEAWEED_VOLUME", 18080)
SEAWEED_FILER = port("SEAWEED_FILER", 18888)
SEAWEED_ADMIN = port("SEAWEED_ADMIN", 18646)
SEAWEED_METRICS = port("SEAWEED_METRICS", 19327)
SEAWEED_GRPC_OFFSET = 10000
ALERTMANAGER = port("ALERTMANAGER", 19193)      # 9093 moved past the Kafka controller's 19093
ALERT_WEBHOOK = port("ALERT_WEBHOOK", 19194)    # where the local Alertmanager sends alerts (any receiver)
AIRFLOW = port("AIRFLOW", 18280)                # the api-server (UI, REST API); 8080 moved past SeaweedFS's 18080
# A Spark standalone cluster (python -m stack up spark): a master and two workers, each its own process.
SPARK_MASTER = port("SPARK_MASTER", 17077)      # spark://127.0.0.1:17077 (Spark's 7077 moved)
SPARK_MASTER_UI = port("SPARK_MASTER_UI", 18091)  # the master's web UI and /json (8080 moved)
SPARK_WORKER_1 = port("SPARK_WORKER_1", 17078)
SPARK_WORKER_1_UI = port("SPARK_WORKER_1_UI", 18092)
SPARK_WORKER_2 = port("SPARK_WORKER_2", 17079)
SPARK_WORKER_2_UI = port("SPARK_WORKER_2_UI", 18093)


def _check_names() -> None:
    """Every KAPPA_PORTS__ variable moves a port of the stack (a misspelt one would move nothing)."""
    import difflib
    import os

    for variable in sorted(v for v in os.environ if v.startswith("KAPPA_PORTS__")):
        name = variable[len("KAPPA_PORTS__"):]
        if name not in NAMES:
            near = difflib.get_close_matches(name, sorted(NAMES), n=1)
            raise ValueError(f"{variable} is no port of the stack" + (f"; did you mean KAPPA_PORTS__{near[0]}?"
                                                                       if near else f"; ports: {sorted(NAMES)}"))


_check_names()
