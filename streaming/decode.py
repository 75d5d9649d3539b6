"""Confluent-framed Avro decoded in the JVM: ``from_avro`` on the body after the 5-byte header.

Every writer schema id known for the topic's subject gets its own ``from_avro(body, writer,
{avroSchema: reader})`` branch, all resolving to one reader schema (the newest version), chosen by
the id in the header: each row is decoded once, by the JVM, with no Python on the per-record path.
Rows whose id the decoder does not know are flagged; the job then refreshes the ids from the
registry and restarts the micro-batch (see :class:`UnknownSchemaIds`).
"""
from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.schema_registry import SchemaRegistryClient
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

from schemas.serde import subject_for
from kappa.errors import KappaError

SCHEMA_ID = "_schema_id"
DECODED = "_decoded"
DECODE_ERROR = "_decode_error"
UNKNOWN_ID = "unknown writer schema id "  # the error of a row whose writer id the decoder lacks


def guard_known(error: Column) -> Column:
    """``error`` unchanged, except that a row whose writer id the decoder lacks fails the task.

    Applied before a batch is shuffled to the sinks: the batch then fails in the shuffle's map stage,
    before any partition has written, and :func:`unknown_ids` finds the id in the failure.
    """
    return F.when(error.startswith(UNKNOWN_ID), F.raise_error(error)).otherwise(error)


def unknown_ids(failure: BaseException) -> list[int]:
    """The writer ids that :func:`guard_known` failed a Spark job for ([] for any other failure),
    read from the error condition Spark raised (``USER_RAISED_EXCEPTION`` and its parameter),
    wherever it sits in the chain of causes (a foreachBatch, a query, a Delta write wrap it)."""
    ids = set()
    for condition, parameters in _spark_errors(failure):
        message = parameters.get("errorMessage", "")
        if condition == "USER_RAISED_EXCEPTION" and message.startswith(UNKNOWN_ID):
            ids.add(int(message.removeprefix(UNKNOWN_ID)))
    return sorted(ids)


def _spark_errors(failure: BaseException):
    """(condition, message parameters) of every Spark error in ``failure``'s causes: the Python
    exceptions' and, under each exception PySpark captured from the JVM, the Java ones'."""
    seen: set[int] = set()
    python: BaseException | None = failure
    while python is not None and id(python) not in seen:
        seen.add(id(python))
        if hasattr(python, "getCondition") and python.getCondition():
            yield python.getCondition(), dict(python.getMessageParameters() or {})
        java = getattr(python, "_origin", None)
        while java is not None:
            if _is_spark_throwable(java):
                yield java.getCondition(), dict(java.getMessageParameters())
            java = java.getCause()
        python = python.__cause__ or python.__context__


def _is_spark_throwable(java) -> bool:
    from py4j.java_gateway import is_instance_of
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    return gateway is not None and is_instance_of(gateway, java, "org.apache.spark.SparkThrowable")


class UnknownSchemaIds(KappaError, RuntimeError):
    """A batch carries writer ids the decoder was built without: refetch and rerun the batch."""

    def __init__(self, topic: str, ids: list[int]) -> None:
        super().__init__(f"topic {topic}: writer schema ids {ids} are not known to the decoder")
        self.topic, self.ids = topic, ids


@dataclass(frozen=True)
class Decoder:
    """The writer schemas of one subject and the reader schema they resolve to."""

    subject: str
    reader_schema: str
    writer_schemas: dict[int, str]

    @classmethod
    def from_registry(cls, registry: SchemaRegistryClient, topic: str, extra_ids: list[int] = ()) -> "Decoder":
        subject = subject_for(topic)
        versions = registry.get_versions(subject)
        writers: dict[int, str] = {}
        reader = ""
        for version in sorted(versions):
            registered = registry.get_version(subject, version)
            writers[registered.schema_id] = reader = registered.schema.schema_str
        for schema_id in extra_ids:  # ids seen in data but registered under another subject
            writers.setdefault(schema_id, registry.get_schema(schema_id).schema_str)
        # The newest version is the reader: not get_latest_version(), which the client caches for
        # its life, so a job that refreshes for a new writer id would keep the old reader schema.
        return cls(subject, reader, writers)

    def decode(self, df: DataFrame) -> DataFrame:
        """Adds ``_schema_id``, ``_decoded`` (the reader struct) and ``_decode_error`` (null when fine)."""
        header_ok = (F.length("value") > 5) & (F.substring("value", 1, 1) == F.lit(b"\x00"))
        schema_id = F.when(header_ok, F.conv(F.hex(F.substring("value", 2, 4)), 16, 10).cast("int"))
        body = F.expr("substring(value, 6, length(value) - 5)")
        decoded: Column | None = None
        for writer_id, writer in sorted(self.writer_schemas.items()):
            branch = from_avro(body, writer, {"avroSchema": self.reader_schema, "mode": "PERMISSIVE"})
            decoded = (F.when(F.col(SCHEMA_ID) == writer_id, branch) if decoded is None
                       else decoded.when(F.col(SCHEMA_ID) == writer_id, branch))
        known = list(self.writer_schemas)
        out = df.withColumn(SCHEMA_ID, schema_id).withColumn(DECODED, decoded)
        return out.withColumn(DECODE_ERROR, F.when(
            F.col("value").isNull(), F.lit("tombstone")
        ).when(
            ~header_ok, F.lit("not Confluent-framed Avro (magic byte 0 + 4-byte schema id)")
        ).when(
            ~F.col(SCHEMA_ID).isin(known), F.concat(F.lit(UNKNOWN_ID), F.col(SCHEMA_ID).cast("string"))
        ).when(
            F.col(DECODED).isNull(), F.concat(F.lit("Avro body does not decode with writer schema id "),
                                              F.col(SCHEMA_ID).cast("string"))
        ))

