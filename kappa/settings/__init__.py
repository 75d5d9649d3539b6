"""One typed settings layer for every process of the platform.

Values come, highest precedence first, from environment variables (``KAPPA_<GROUP>__<FIELD>``,
e.g. ``KAPPA_KAFKA__BOOTSTRAP_SERVERS``), then from a TOML file named by ``KAPPA_CONFIG``
(tables ``[kafka]``, ``[registry]``, ...), then from the defaults below. The defaults are the
local stack's fixed ports on 127.0.0.1, so a fresh checkout works with no configuration, and
pointing the platform at production clusters is a matter of setting the same keys.

Every variable follows that one scheme, also those other parts read themselves (``ELSEWHERE``:
``KAPPA_PORTS__<NAME>``, ``KAPPA_STACK__HOME``, the DAGs' ``KAPPA_ORCHESTRATION__<FIELD>``); the
only other is ``KAPPA_CONFIG``, the file. Names are checked: a variable or a TOML key that is no
setting is refused (:class:`SettingsRefused`), naming it and the closest setting, rather than
ignored while the process talks to the local default; a variable's old name (``RENAMED``) is
refused naming its new one.
"""
from __future__ import annotations

import difflib
import logging
import os
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kappa.errors import Refused
from kappa.settings import ports


class SettingsRefused(Refused, ValueError):
    """A setting that does not exist or does not parse; the message names it and the fix."""


class KafkaSettings(BaseModel):
    bootstrap_servers: str = f"127.0.0.1:{ports.KAFKA}"
    # Extra librdkafka properties (security.protocol, sasl.*, ...) for production clusters.
    client_config: dict[str, str] = {}

    def client(self, **properties) -> dict:
        """A confluent-kafka client's configuration: the cluster, ``properties``, then the extras
        above; librdkafka's own log lines go through Python's logging (one JSON line each, like the
        rest of the process) instead of straight to stderr."""
        return {"bootstrap.servers": self.bootstrap_servers, "logger": logging.getLogger("kafka.client"),
                **properties, **self.client_config}


class RegistrySettings(BaseModel):
    url: str = f"http://127.0.0.1:{ports.SCHEMA_REGISTRY}"
    # Kafka topic where the local registry keeps its schemas (compacted, like Confluent's _schemas).
    topic: str = "_schemas"
    default_compatibility: str = "BACKWARD"


class CassandraSettings(BaseModel):
    hosts: list[str] = ["127.0.0.1"]
    port: int = ports.CASSANDRA_CQL
    keyspace: str = "kappa"
    local_dc: str = "datacenter1"
    username: str | None = None
    password: str | None = None


class S3Settings(BaseModel):
    # host:port as the minio SDK wants it; ``secure`` selects https.
    endpoint: str = f"127.0.0.1:{ports.S3}"
    secure: bool = False
    access_key: str = "kappa"
    secret_key: str = "kappa-secret"
    region: str = "us-east-1"
    lake_bucket: str = "lake"

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"


class ClickHouseSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = ports.CLICKHOUSE_HTTP
    secure: bool = False
    username: str = "default"
    password: str = ""
    database: str = "kappa"


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = ports.POSTGRES
    user: str = "kappa"
    password: str = "kappa"
    dbname: str = "kappa"

    def dsn(self, dbname: str | None = None) -> str:
        """libpq connection string (psycopg2.connect accepts it as is)."""
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={dbname or self.dbname}"
        )

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.dbname}"


class PrometheusSettings(BaseModel):
    url: str = f"http://127.0.0.1:{ports.PROMETHEUS}"
    # Where a process announces its /metrics to a Prometheus with file discovery (monitoring/targets.py);
    # None: the local stack's, <state folder>/prometheus/targets.
    targets_dir: str | None = None
    # docs/runbook.md's address as your on-call opens it (your forge's view of the file, a wiki page):
    # every alert's runbook_url is it + "#<alert>" (monitoring/runbook.py). None: the checkout's file.
    runbook_url: str | None = None


class MetricsSettings(BaseModel):
    # The address of every process's /metrics, /healthz and /readyz (monitoring/endpoint.py): loopback
    # locally; 0.0.0.0 in a pod, so Prometheus and the kubelet's probes reach it (k8s/).
    host: str = "127.0.0.1"


class StreamingSettings(BaseModel):
    # Where a pipeline keeps its checkpoints when its file does not say (checkpoint_dir): a local folder,
    # or s3a://bucket/prefix where a job's driver may move between machines (Kubernetes).
    checkpoint_dir: str = ".stack/checkpoints"
    # The folder of your pipeline files: commands find a pipeline by name there first, then among the
    # platform's own (streaming/pipelines), and `kappa new` writes there. None: streaming/pipelines.
    pipelines_dir: str | None = None


class SparkSettings(BaseModel):
    # Master and jars of a session the process creates itself; under spark-submit (a SparkApplication,
    # SparkSubmitOperator) the command line's --master, --jars and driver address hold instead.
    master: str = "local[2]"
    # Connector jars (Kafka, Avro, s3a, JDBC): on the driver's class path with a local master, else
    # shipped as spark.jars. None: those `make up` resolved from Maven Central (.stack/spark-local.json).
    jars: list[str] | None = None
    # The jars are at the same paths wherever an executor runs (a cluster on this machine, nodes that
    # mount them): on the executors' class path as they are, not fetched from the driver (spark.jars).
    shared_jars: bool = False
    # Extra spark.* properties, e.g. {"spark.executor.memory": "4g"}.
    conf: dict[str, str] = {}


class Settings(BaseSettings):
    """Every endpoint the platform talks to. Build with :func:`get_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="KAPPA_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    def __init__(self, **values) -> None:
        config_file = os.environ.get("KAPPA_CONFIG")
        file = Path(config_file) if config_file else None
        try:
            data = tomllib.loads(file.read_text()) if file is not None and file.is_file() else {}
        except tomllib.TOMLDecodeError as exc:
            raise SettingsRefused(f"settings file {file} (KAPPA_CONFIG) is not valid TOML: {exc}") from None
        _refuse_unknown(type(self), os.environ, data, file)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SettingsRefused(f"settings: {problems} (from KAPPA_<GROUP>__<FIELD> variables or {file or 'defaults'})") \
                from None

    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    cassandra: CassandraSettings = CassandraSettings()
    s3: S3Settings = S3Settings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    postgres: PostgresSettings = PostgresSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    metrics: MetricsSettings = MetricsSettings()
    streaming: StreamingSettings = StreamingSettings()
    spark: SparkSettings = SparkSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("KAPPA_CONFIG")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(
                    f"KAPPA_CONFIG points at {path}, which is not a file: "
                    "unset KAPPA_CONFIG or give the path of a TOML settings file"
                )
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


# Groups of the one naming scheme, KAPPA_<GROUP>__<FIELD>, that other parts read themselves (not
# fields of Settings): their fields, or None where that part checks its own names.
ELSEWHERE: dict[str, set[str] | None] = {
    "ports": None,            # kappa/settings/ports.py; the development stack checks every name (stack/ports.py)
    "orchestration": None,    # the DAGs' own (orchestration/config.py checks them)
    "stack": {"home", "java17_home"},   # the state folder (kappa/settings/paths.py), the stack's Java
    "files": {"config"},      # the files connector's Lambda handler: its TOML config
}
# Variables renamed into that scheme: refused with their new name (docs/settings.md lists them).
RENAMED = {
    "KAPPA_STACK_HOME": "KAPPA_STACK__HOME", "KAPPA_JAVA17_HOME": "KAPPA_STACK__JAVA17_HOME",
    "KAPPA_PROMETHEUS_TARGETS_DIR": "KAPPA_PROMETHEUS__TARGETS_DIR", "KAPPA_FILES_CONFIG": "KAPPA_FILES__CONFIG",
    "SCHEMA_REGISTRY_URL": "KAPPA_REGISTRY__URL",
    **{old: f"KAPPA_ORCHESTRATION__{new}" for old, new in {
        "KAPPA_REPLAY_RUNNER": "RUNNER", "KAPPA_PLATFORM_HOME": "PLATFORM_HOME",
        "KAPPA_PLATFORM_PYTHON": "PLATFORM_PYTHON", "KAPPA_SPARK_CONN_ID": "SPARK_CONN_ID",
        "KAPPA_SPARK_APPLICATION": "SPARK_APPLICATION", "KAPPA_IMAGE": "IMAGE", "KAPPA_K8S_NAMESPACE": "K8S_NAMESPACE",
        "KAPPA_K8S_CONFIG_MAP": "K8S_CONFIG_MAP", "KAPPA_K8S_SECRET": "K8S_SECRET",
        "KAPPA_ALERTMANAGER_URL": "ALERTMANAGER_URL", "KAPPA_REPLAY_RETRIES": "RETRIES",
        "KAPPA_REPLAY_RETRY_DELAY_S": "RETRY_DELAY_S", "KAPPA_RECONCILE_START": "RECONCILE_START"}.items()},
}


def _renamed(variable: str) -> str | None:
    if variable in RENAMED:
        return RENAMED[variable]
    if variable.startswith("KAPPA_PORT_"):
        return "KAPPA_PORTS__" + variable[len("KAPPA_PORT_"):]
    return None


def _refuse_unknown(model: type[BaseSettings], environ: Mapping[str, str], data: dict, file: Path | None) -> None:
    """Every settings variable and file key names a setting, or the first that does not is refused."""
    groups = model.model_fields

    def closest(name: str, known) -> str:
        near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        return f"; did you mean {near[0]}?" if near else f"; known: {', '.join(sorted(known))}"

    for variable in sorted(environ):
        new = _renamed(variable)
        if new is not None:
            raise SettingsRefused(f"{variable} was renamed {new} (every variable is KAPPA_<GROUP>__<FIELD>): "
                                  "set that instead")
        if not variable.upper().startswith("KAPPA_") or "__" not in variable:
            continue
        group, _, rest = variable[len("KAPPA_"):].lower().partition("__")
        field = rest.split("__")[0]
        if group in ELSEWHERE:
            known_fields = ELSEWHERE[group]
            if known_fields is not None and field not in known_fields:
                raise SettingsRefused(f"{variable} is not a setting" + closest(
                    variable, [f"KAPPA_{group.upper()}__{f.upper()}" for f in known_fields]))
            continue
        if group not in groups:
            known = [f"KAPPA_{g.upper()}__" for g in [*groups, *ELSEWHERE]]
            raise SettingsRefused(f"{variable} is not a setting: no group {group!r}"
                                  + closest(f"KAPPA_{group.upper()}__", known))
        fields = groups[group].annotation.model_fields
        if field not in fields:
            known = [f"KAPPA_{group.upper()}__{f.upper()}" for f in fields]
            raise SettingsRefused(f"{variable} is not a setting" + closest(f"KAPPA_{group.upper()}__{field.upper()}",
                                                                         known))
    for group, table in data.items():
        if group not in groups:
            raise SettingsRefused(f"settings file {file}: [{group}] is not a settings group" + closest(group, groups))
        fields = groups[group].annotation.model_fields
        for field in table if isinstance(table, dict) else ():
            if field not in fields:
                raise SettingsRefused(f"settings file {file}: [{group}] {field} is not a setting"
                                      + closest(field, fields))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
