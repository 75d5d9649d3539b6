"""A pipeline file: one TOML that says what a job is, so a new table needs configuration, not code.

    name = "orders"                          # the query: checkpoint folder, tokens, metrics
    topic = "shop.api.orders"
    key = ["order_id"]                       # the serving table's key (default: the topic's key schema, as CDC registers)
    version = "updated_at"                   # events: the column that orders the changes of a key
    [validate]                               # rejected rows go to <topic>.dlq, naming the rule
    required = ["order_id", "amount"]
    range = { amount = [0, 1_000_000] }
    [reference.customers]                    # a dimension, cached and re-read every reference_refresh_s
    postgres = "customers_current"
    join = ["customer_id"]
    columns = { segment = "customer_segment" }
    on_missing = "keep"                      # keep (nulls) | dlq | hold (wait until it has rows)

Every other key is a :class:`~streaming.plan.JobConfig` setting (namespace, sinks, trigger,
retries, ...). The steps run in a fixed order: the CDC envelope (detected from the schema) or the
events' version, normalisation, validation, reference joins, the SQL file, then the Python module's
``transform``; the module's ``extra`` runs per partition on the executors (e.g. features).
"""
from __future__ import annotations

import importlib
import json
import logging
import tomllib
from pathlib import Path
from typing import Literal

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import BaseModel, ConfigDict, Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from schemas.serde import subject_for
from kappa.settings import Settings, get_settings
from streaming.plan import BatchContext, JobConfig, JobDefinition
from streaming import versions
from streaming.versions import ServingVersion
from streaming.transforms import changes, enrich, normalise
from streaming.transforms.validate import ERROR, Rule, check
from kappa.errors import Refused

log = logging.getLogger(__name__)
CDC_FIELDS = {"before", "after", "op"}  # a Debezium envelope (connectors/cdc)


class Validation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    required: list[str] = []
    range: dict[str, tuple[int | float | None, int | float | None]] = {}  # column -> [low, high], inclusive
    regex: dict[str, str] = {}
    enum: dict[str, list[str]] = {}

    def rules(self) -> list[Rule]:
        return [*Rule.required(*self.required),
                *(Rule.between(c, low, high) for c, (low, high) in self.range.items()),
                *(Rule.one_of(c, values) for c, values in self.enum.items()),
                *(Rule.matches(c, pattern) for c, pattern in self.regex.items())]


class Normalisation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Trim every string column, empty strings become null. Default: on for events, off for CDC
    # (a captured table is replicated as it is: char(n) keeps its padding, '' stays '').
    trim: bool | None = None
    upper: list[str] = []            # codes in upper case


class Reference(BaseModel):
    model_config = ConfigDict(extra="forbid")
    postgres: str                    # table or view; in the pipeline's namespace unless "schema.table"
    join: list[str]                  # join columns, named the same in the rows and the reference
    columns: dict[str, str] = {}     # reference column -> the column it becomes (default: all, same name)
    on_missing: Literal["keep", "dlq", "hold"] = "keep"


class Pipeline(JobConfig):
    """A pipeline file: the job's run settings (``JobConfig``) and what the job is."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    table: str | None = None         # default: the topic's last part
    key: list[str] = []              # default: the fields of the topic's key schema (<topic>-key, e.g. CDC)
    envelope: Literal["auto", "cdc", "events"] = "auto"
    version: str = "event_time"      # events only: a timestamp or number column
    validate_: Validation = Field(default_factory=Validation, alias="validate")
    normalise: Normalisation = Field(default_factory=Normalisation)
    reference: dict[str, Reference] = {}
    sql: Path | None = None          # relative to the pipeline file
    python: str | None = None        # a module: transform(rows, ctx) -> rows, extra(changes, out)
    migrations: Path | None = None   # hand-written DDL, <store>/V<NNN>__*.sql, relative to the pipeline file

    def definition(self, settings: Settings | None = None) -> JobDefinition:
        """The job; without a ``key`` in the file it is read from the registry (``settings``' registry)."""
        module = importlib.import_module(self.python) if self.python else None
        key = tuple(self.key) or registry_key(settings or get_settings(), self.name, self.topic)
        return JobDefinition(
            table=self.table or self.topic.rsplit(".", 1)[-1], key=key,
            transform=_Transform(self, getattr(module, "transform", None)),
            extra=getattr(module, "extra", None),
            reference={name: _Loader(name, ref) for name, ref in self.reference.items()},
            hold=tuple(name for name, ref in self.reference.items() if ref.on_missing == "hold"),
            migrations=self.migrations)


    def as_version(self, settings: Settings, number: int | None = None) -> "Pipeline":
        """The pipeline as the job of serving version ``number`` runs it; None: the active version, the
        one readers see (the namespace itself until a shadow rebuild was cut over). A version's job has
        its own query name and checkpoint, and starts where the version's shadow replay ended, or at
        the earliest retained offset when no replay built it (the Kappa rebuild's shadow job)."""
        import psycopg2

        try:
            known = versions.listing(settings, self.namespace, self.name)
        except psycopg2.Error as exc:
            raise ValueError(f"pipeline {self.name}: the serving versions record ({self.namespace}.{versions.RECORD} in "
                             f"PostgreSQL at {settings.postgres.host}:{settings.postgres.port}) could not be read: "
                             f"{str(exc).strip().splitlines()[0]}; start PostgreSQL or fix postgres.* settings") from None
        if number is None:
            target = next((v for v in known if v.state == "active"), None)
        else:
            target = next((v for v in known if v.number == number), None)
            if target is None and not (number == 1 and not known):
                raise ValueError(f"pipeline {self.name} has no serving version {number} (it has "
                                 f"{[v.number for v in known] or [1]}): start a rebuild with kappa rebuild")
            if target is not None and target.state in ("previous", "dropped"):
                raise ValueError(f"version {number} of pipeline {self.name} is {target.state}: its job does not run; "
                                 f"cut readers back to it first (kappa versions --cut-over {number})")
        number = target.number if target else 1
        serving = ServingVersion(pipeline=self.name, namespace=self.namespace, number=number)
        if target is None or target.home == self.namespace and set(target.locations.values()) == {self.namespace}:
            return self.model_copy(update={"serving": serving})
        if number == 1:
            raise ValueError(f"pipeline {self.name}: readers were switched back to version 1, whose tables moved out "
                             f"of {self.namespace} at the first cut-over; a live job writes versions 2 and later "
                             "only: rebuild with kappa backfill --mode shadow and cut over to it")
        return self.model_copy(update={"name": versions.job_name(self.name, number), "namespace": target.home,
                                       "serving": serving, "starting_offsets": target.resume_offsets or "earliest"})


def registry_key(settings: Settings, pipeline: str, topic: str) -> tuple[str, ...]:
    """The fields of the topic's registered key schema: what the CDC connector keys a table's events by."""
    subject = subject_for(topic, is_key=True)
    try:
        schema = json.loads(SchemaRegistryClient({"url": settings.registry.url}).get_latest_version(subject)
                            .schema.schema_str)
    except SchemaRegistryError as exc:
        raise ValueError(f"pipeline {pipeline}: no 'key' in the file, and the registry has no key schema for "
                         f"{topic} (subject {subject}: {exc.error_message}): set key = [\"column\", ...]") from None
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ValueError(f"pipeline {pipeline}: the key schema of {topic} (subject {subject}) is not a record of "
                         f"columns: set key = [\"column\", ...] in the file")
    return tuple(f["name"] for f in schema["fields"])


def load(path: Path, **overrides) -> Pipeline:
    """The pipeline in ``path``; ``overrides`` replace its settings (tests, tools). A file without
    ``checkpoint_dir`` keeps its checkpoints where the settings say (``streaming.checkpoint_dir``), so
    the same file runs locally and on Kubernetes (checkpoints on S3)."""
    values = tomllib.loads(Path(path).read_text())
    values.setdefault("checkpoint_dir", get_settings().streaming.checkpoint_dir)
    values.update(overrides)
    for relative in ("sql", "migrations"):
        if values.get(relative):
            values[relative] = (Path(path).resolve().parent / values[relative]).resolve()
    return Pipeline.model_validate(values)


class _Transform:
    """The pipeline's declared steps as one ``transform`` (picklable, unlike a closure over the file)."""

    def __init__(self, pipeline: Pipeline, custom) -> None:
        self.pipeline, self.custom = pipeline, custom

    def __call__(self, rows: DataFrame, ctx: BatchContext) -> DataFrame:
        p = self.pipeline
        cdc = p.envelope == "cdc" or (p.envelope == "auto" and CDC_FIELDS <= set(rows.columns))
        if cdc:
            rows = changes.from_envelope(rows)
        if p.normalise.trim if p.normalise.trim is not None else not cdc:
            rows = normalise.trim_strings(rows)
        rows = normalise.upper_codes(rows, *p.normalise.upper)
        rows = check(rows, p.validate_.rules())
        for name, ref in p.reference.items():
            rows = _join(rows, name, ref, ctx.reference[name])
        if p.sql is not None:
            rows = enrich.with_sql(rows, p.sql, **ctx.reference)
        if self.custom is not None:
            rows = self.custom(rows, ctx)
        if not cdc:
            version = F.col(p.version)
            if dict(rows.dtypes)[p.version].startswith("timestamp"):
                version = F.unix_micros(version)
            rows = rows.withColumn(changes.VERSION, version.cast("bigint")).withColumn(changes.DELETED, F.lit(False))
        return rows


def _join(rows: DataFrame, name: str, ref: Reference, frame: DataFrame) -> DataFrame:
    """A left join with the reference; a row without a match keeps nulls or, with ``dlq``, is rejected."""
    wanted = ref.columns or {c: c for c in frame.columns if c not in ref.join}
    matched = f"_matched_{name}"
    keys = {k: f"_{name}_{k}" for k in ref.join}  # renamed, so the rows keep their columns' order
    right = frame.select(*(F.col(k).alias(renamed) for k, renamed in keys.items()),
                         *(F.col(c).alias(alias) for c, alias in wanted.items()), F.lit(True).alias(matched))
    condition = [rows[k] == right[renamed] for k, renamed in keys.items()]
    joined = rows.join(F.broadcast(right), on=condition, how="left").drop(*keys.values())
    if ref.on_missing == "dlq":
        missing = F.col(ERROR).isNull() & F.col(matched).isNull()
        joined = joined.withColumn(ERROR, F.when(missing, F.lit(
            f"no match in reference {name} ({ref.postgres}) for {', '.join(ref.join)}")).otherwise(F.col(ERROR)))
    return joined.drop(matched)


class ReferenceMissing(Refused, RuntimeError):
    """A reference table or view does not exist (yet): the job cannot know its columns."""


class _Loader:
    """Reads one reference from PostgreSQL (on the driver, once per refresh)."""

    def __init__(self, name: str, ref: Reference) -> None:
        self.name, self.ref = name, ref

    def __call__(self, ctx: BatchContext) -> DataFrame:
        import psycopg2

        pg = ctx.settings.postgres
        serving = ctx.config.serving.namespace if ctx.config.serving else ctx.config.namespace  # not a version's
        relation = self.ref.postgres if "." in self.ref.postgres else f"{serving}.{self.ref.postgres}"
        conn = psycopg2.connect(pg.dsn(), application_name="kappa-reference", connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass(%s)", (relation,))
                exists = cur.fetchone()[0] is not None
        finally:
            conn.close()
        if not exists:
            raise ReferenceMissing(
                f"pipeline {ctx.config.name}: reference {self.name} reads PostgreSQL {relation}, which does not "
                f"exist: start the pipeline that makes it first, or create it (reference.{self.name}.postgres)")
        frame = (ctx.spark.read.format("jdbc").option("url", pg.jdbc_url).option("user", pg.user)
                 .option("password", pg.password).option("driver", "org.postgresql.Driver")
                 .option("dbtable", relation).load())
        return frame.select(*self.ref.join, *self.ref.columns) if self.ref.columns else frame
