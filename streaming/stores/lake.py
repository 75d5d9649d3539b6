"""The lake: one Delta Lake table per serving table on S3, every change, partitioned by event date.

``s3a://<bucket>/<namespace>/<table>``, written by Spark's Delta writer: each batch is one ACID
commit, appended exactly once with Delta's idempotent writes (``txnAppId`` = the query,
``txnVersion`` = the batch id), so a batch rerun after a crash finds its version committed and
writes nothing. Tables are created with optimized writes (one file per event date per batch rather
than one per partition and date) and auto-compaction (small files of a date are merged after a
commit once there are enough of them).

Versions: the lake is read by path, so the pointer object ``<namespace>/_serving/<table>.json`` in
the lake bucket names each table's active path (:class:`LakeStore`); version 1's tables stay.

A live job's partitions do not write Delta themselves: each stages its batch's accepted changes as
one Parquet object (:class:`StagedChanges`, ``<namespace>/_staged/<query>/batch-<id>-part-<p>.parquet``,
beside the other stores), and the job's :class:`~streaming.stores.writer.LakeWriter` appends the staged changes
of the serving batches Spark has committed as one Delta commit every ``lake_trigger_seconds``
(``txnVersion`` = the newest serving batch in it), then deletes them. A replay chunk appends its
changes directly (:func:`append`).

Readers: Spark (``spark.read.format("delta").load(path)``), the ``deltalake`` package
(:func:`storage_options`), ClickHouse's ``deltaLake()`` table function, DuckDB, Trino.
"""
from __future__ import annotations

import io
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import ServerError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from kappa.settings import Settings
from streaming.stores.base import Endpoint, Sink, Store, WriteToken, check_existing
from streaming.tables import DELETED, VERSION, Table

PARTITION_COLUMN = "event_date"
_STAGED_NAME = re.compile(r"batch-(\d+)-part-(\d+)\.parquet")  # StagedChanges' objects
TABLE_PROPERTIES = {
    "delta.autoOptimize.optimizeWrite": "true",
    "delta.autoOptimize.autoCompact": "true",
}


class LakeStore(Store):
    """The lake's verbs. Its tables are made by its writers (:func:`ensure_table`, which needs the
    Spark session the Delta writer runs in), not per partition."""

    name = "lake"
    serving = False

    def endpoint(self, settings: Settings) -> Endpoint:
        host, _, port = settings.s3.endpoint.rpartition(":")
        return Endpoint("S3 (lake)", "s3.endpoint", host, int(port))

    def column_type(self, spark_type: str) -> str:
        return spark_type  # Delta keeps Spark's types

    def tables(self, settings: Settings, home: str) -> list[str]:
        """The Delta tables directly under ``home`` (a prefix): folders with a ``_delta_log``."""
        store, bucket = client(settings), settings.s3.lake_bucket
        found = []
        for entry in store.list_objects(bucket, prefix=f"{home}/"):
            name = entry.object_name[len(home) + 1:].strip("/")
            if entry.is_dir and not name.startswith("_") and \
                    any(True for _ in store.list_objects(bucket, prefix=f"{home}/{name}/_delta_log/")):
                found.append(name)
        return sorted(found)

    def cut_over(self, settings: Settings, namespace: str, target, current) -> list[str]:
        store, bucket = client(settings), settings.s3.lake_bucket
        home = target.locations[self.name]
        switched = []
        for table in self.tables(settings, home):
            body = json.dumps({"pipeline": target.pipeline, "version": target.number,
                               "path": path(settings, home, table)}).encode()
            store.put_object(bucket, pointer(namespace, table), io.BytesIO(body), len(body),
                             content_type="application/json")  # one PUT: readers see the old or the new object
            switched.append(f"lake {pointer(namespace, table)} -> {home}/{table}")
        return switched

    def drop(self, settings: Settings, namespace: str, version) -> list[str]:
        """The version's prefix; version 1's (the serving namespace's) only its tables whose pointer
        names another version: the other pipelines' tables and the raw archive stay."""
        store, bucket = client(settings), settings.s3.lake_bucket
        home = version.locations[self.name]
        prefixes = [f"{home}/"] if home != namespace else \
            [f"{namespace}/{table}/" for table in _pointed_elsewhere(settings, namespace)]
        dropped = []
        for prefix in prefixes:
            objects = [DeleteObject(o.object_name) for o in store.list_objects(bucket, prefix=prefix, recursive=True)]
            errors = list(store.remove_objects(bucket, objects))
            if errors:
                raise OSError(f"lake {prefix}: {len(errors)} objects not deleted, the first: {errors[0]}")
            dropped.append(f"lake s3://{bucket}/{prefix}")
        return dropped


def pointer(namespace: str, table: str) -> str:
    """The lake bucket's object that names the path of ``table``'s active version."""
    return f"{namespace}/_serving/{table}.json"


def _pointed_elsewhere(settings: Settings, namespace: str) -> list[str]:
    """The lake tables in ``namespace`` whose pointer names another namespace's path: version 1's."""
    store, bucket = client(settings), settings.s3.lake_bucket
    tables = []
    for entry in store.list_objects(bucket, prefix=f"{namespace}/_serving/"):
        response = store.get_object(bucket, entry.object_name)
        try:
            target = json.loads(response.read())
        finally:
            response.close()
            response.release_conn()
        if f"/{namespace}/" not in target["path"]:
            tables.append(entry.object_name.rsplit("/", 1)[-1].removesuffix(".json"))
    return tables


def path(settings: Settings, namespace: str, table: str) -> str:
    return f"s3a://{settings.s3.lake_bucket}/{namespace}/{table}"


def client(settings: Settings) -> Minio:
    """A MinIO/S3 client of the object store the lake (and S3 checkpoints) live in."""
    s3 = settings.s3
    return Minio(s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=s3.secure, region=s3.region)


def ensure_bucket(settings: Settings) -> None:
    store = client(settings)
    if not store.bucket_exists(settings.s3.lake_bucket):
        store.make_bucket(settings.s3.lake_bucket)


def ensure_table(spark: SparkSession, settings: Settings, namespace: str, spec: Table, job: str = "") -> str:
    """The table's Delta table, created if missing and given the columns the schema gained; its location.

    Like the other stores' (:meth:`~streaming.stores.base.Store.ensure_table`): a column whose type
    changed is refused.
    """
    ensure_bucket(settings)
    location = path(settings, namespace, spec.name)
    columns = [*spec.columns, (VERSION, "bigint"), (DELETED, "boolean")]
    jvm = spark.sparkContext._jvm
    if not jvm.io.delta.tables.DeltaTable.isDeltaTable(spark._jsparkSession, location):
        ddl = ", ".join(f"`{c}` {t}" for c, t in [*columns, (PARTITION_COLUMN, "date")])
        properties = ", ".join(f"'{k}' = '{v}'" for k, v in TABLE_PROPERTIES.items())
        spark.sql(f"CREATE TABLE IF NOT EXISTS delta.`{location}` ({ddl}) USING delta "
                  f"PARTITIONED BY ({PARTITION_COLUMN}) TBLPROPERTIES ({properties})")
        return location
    existing = {f.name: f.dataType.simpleString() for f in spark.read.format("delta").load(location).schema.fields}
    added = check_existing(job or spec.name, "lake", location, spec, existing, list(spec.key), lambda c, t: t)
    if added:
        spark.sql(f"ALTER TABLE delta.`{location}` ADD COLUMNS ("
                  + ", ".join(f"`{c}` {spec.type_of(c)}" for c in added) + ")")
    return location


def append(changes: DataFrame, location: str, query: str, batch_id: int) -> None:
    """Every change of a batch as one commit, at most once per (query, batch id)."""
    (changes.withColumn(PARTITION_COLUMN, F.to_date("event_time"))
     .write.format("delta").mode("append")
     .option("txnAppId", query).option("txnVersion", str(batch_id))
     .save(location))


def last_append_rows(settings: Settings, namespace: str, table: str) -> int:
    """The rows the table's newest append wrote (its commit's ``numOutputRows``), read from the Delta
    log with ``deltalake``: a count without counting the rows again, and without a Spark query for
    it (DESCRIBE HISTORY cost half a second a commit). An auto-compaction commit after the append
    is passed over."""
    from deltalake import DeltaTable

    log = DeltaTable(uri(settings, namespace, table), storage_options=storage_options(settings)).history(5)
    newest = next((c for c in log if c.get("operation") == "WRITE"), None)
    return int((newest or {}).get("operationMetrics", {}).get("numOutputRows", 0))


def committed_batch(settings: Settings, namespace: str, table: str, query: str) -> int | None:
    """The newest batch id ``query`` appended to the table (its idempotent writes' ``txnVersion``), or None.

    Delta skips an append whose version it holds without running the DataFrame behind it: a rerun
    of that batch must then run its plan another way, or the streaming state it carries (the
    dedupe's) is never committed and Spark fails the batch (STATE_STORE_COMMIT_VALIDATION_FAILED)."""
    from deltalake import DeltaTable

    return DeltaTable(uri(settings, namespace, table), storage_options=storage_options(settings)).transaction_version(query)


def storage_options(settings: Settings) -> dict[str, str]:
    """What the ``deltalake`` package (delta-rs) needs to read the lake: DeltaTable(uri, storage_options=...)."""
    s3 = settings.s3
    return {"AWS_ENDPOINT_URL": s3.url, "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_REGION": s3.region, "AWS_ALLOW_HTTP": "true" if not s3.secure else "false",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


def staged_prefix(namespace: str, query: str) -> str:
    """Where a live query's partitions stage their changes for the lake (object keys in the lake's
    bucket). Inside the namespace's prefix, so dropping a serving version drops its staging too."""
    return f"{namespace}/_staged/{query}/"


class StagedChanges(Sink):
    """A serving batch's partition -> one Parquet object of its accepted changes, every one (not only
    the newest per key), in the table's types. Idempotent by name: a rerun of the partition writes
    the same object again, and the lake reads only batches Spark has committed."""

    name = "lake"
    # The object store not answering, or answering 5xx (minio's ServerError).
    transient = (urllib3.exceptions.HTTPError, ServerError, ConnectionError, TimeoutError)

    def __init__(self, settings: Settings, namespace: str) -> None:
        super().__init__(namespace)
        self.settings = settings
        self._client: Minio | None = None

    @property
    def address(self) -> str:
        return self.settings.s3.endpoint

    def write(self, rows: pa.Table, spec: Table, token: WriteToken) -> None:
        if self._client is None:
            self._client = client(self.settings)
        body = io.BytesIO()
        pq.write_table(rows, body, compression="zstd")
        size = body.tell()
        body.seek(0)
        key = f"{staged_prefix(self.namespace, token.query)}batch-{token.batch_id}-part-{token.partition:05d}.parquet"
        self._client.put_object(self.settings.s3.lake_bucket, key, body, size)

    def reset(self) -> None:
        self._client = None


def staged(settings: Settings, namespace: str, query: str) -> dict[int, list[str]]:
    """The serving batches of ``query`` that have changes staged (committed by Spark or not): batch id
    -> its objects' keys. One folder for all of them: an S3 server that keeps a folder once its
    objects are deleted (SeaweedFS does) would otherwise keep one per batch."""
    prefix = staged_prefix(namespace, query)
    found: dict[int, list[str]] = {}
    for entry in client(settings).list_objects(settings.s3.lake_bucket, prefix=prefix):
        named = _STAGED_NAME.fullmatch(entry.object_name[len(prefix):])
        if named:
            found.setdefault(int(named.group(1)), []).append(entry.object_name)
    return found


def staged_batches(settings: Settings, namespace: str, query: str) -> list[int]:
    return sorted(staged(settings, namespace, query))


def read_staged(spark: SparkSession, settings: Settings, keys: list[str], spec: Table) -> DataFrame:
    """Staged changes (their objects' keys) in the table's columns. The schema is given, not inferred
    (no job reading every footer); a column the table gained after a batch was staged reads as null."""
    columns = [*spec.columns, (VERSION, "bigint"), (DELETED, "boolean")]
    return (spark.read.schema(", ".join(f"`{c}` {t}" for c, t in columns))
            .parquet(*[f"s3a://{settings.s3.lake_bucket}/{key}" for key in keys]))


def drop_staged(settings: Settings, namespace: str, query: str, through: int) -> None:
    """Delete the staged changes of the batches up to ``through``: the lake holds them."""
    store, bucket = client(settings), settings.s3.lake_bucket
    objects = [DeleteObject(key) for batch_id, keys in staged(settings, namespace, query).items()
               if batch_id <= through for key in keys]
    errors = list(store.remove_objects(bucket, objects)) if objects else []
    if errors:
        raise OSError(f"lake staging s3://{bucket}/{staged_prefix(namespace, query)}: {len(errors)} objects not "
                      f"deleted, the first: {errors[0]}")


def uri(settings: Settings, namespace: str, table: str) -> str:
    """The same table as ``s3://`` for readers other than Spark's s3a."""
    return f"s3://{settings.s3.lake_bucket}/{namespace}/{table}"
