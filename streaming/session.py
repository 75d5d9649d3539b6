"""The SparkSession every job, replay and test uses, wired to Kafka, Avro, Delta, S3 (s3a) and JDBC."""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from pyspark.sql import SparkSession

from kappa.settings import Settings, get_settings
from kappa.settings.paths import local_spark
from kappa.errors import Refused

SCHEDULER_POOLS = Path(__file__).with_name("scheduler_pools.xml")
LOG4J2 = Path(__file__).with_name("log4j2.properties")


class LocalSparkMissing(Refused, RuntimeError):
    """No connector jars configured and none resolved on this machine."""


def _local_spark() -> dict:
    """What ``make up`` resolved on this machine ({} when it has not run)."""
    path = local_spark()
    return json.loads(path.read_text()) if path.exists() else {}


def connector_jars(settings: Settings, local: dict) -> list[str]:
    """Explicit ``spark.jars`` if configured, else the connectors ``make up`` resolved from Maven Central."""
    if settings.spark.jars is not None:
        return settings.spark.jars
    if "jars" not in local:
        raise LocalSparkMissing(
            f"Spark's connector jars (Kafka, Avro, s3a, JDBC) are not configured (spark.jars, KAPPA_SPARK__JARS) "
            f"and this machine has not resolved them ({local_spark()} is missing): run `make up` (python -m stack "
            "up), or set spark.jars to their paths")
    return local["jars"]


def under_spark_submit() -> bool:
    """Whether spark-submit started this process (a SparkApplication's driver, SparkSubmitOperator):
    its JVM is up, with the command line's master, jars and driver address."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def java_logging() -> str:
    """The JVM options that make Spark log in the platform's format (log4j2.properties beside this
    module), each line naming this process as its Python logs do (kappa.logs)."""
    from kappa import logs

    kind, name = logs.process() or ("pipeline", "spark")
    return (f"-Dlog4j2.configurationFile={LOG4J2.as_uri()} -Dkappa.log.kind={kind} "
            f"-Dkappa.log.name={quote(name, safe='-_.')}")


def build_session(app_name: str, settings: Settings | None = None) -> SparkSession:
    """Get or create the process's SparkSession for ``app_name``.

    Creating one takes about five seconds on two cores, so processes share a single session. Under
    spark-submit, the master, jars, driver address and every other setting the command line gave
    are the command line's (on Kubernetes: the cluster's, the image's jars, the pod's address, the
    SparkApplication's sparkConf); the settings' ``spark.conf`` still wins over both.
    """
    settings = settings or get_settings()
    s3 = settings.s3
    builder = SparkSession.builder.appName(app_name)
    if not under_spark_submit():
        local = _local_spark()
        if "JAVA_HOME" not in os.environ and "java_home" in local:
            os.environ["JAVA_HOME"] = local["java_home"]  # the Java 17 the stack's servers run on
        # Executors run the sinks in Python workers: the same interpreter (and packages) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # The driver listens on loopback (below): Spark need not look for, and warn about, another address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        jars = connector_jars(settings, local)
        builder = (builder.master(settings.spark.master)
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1"))
        if settings.spark.shared_jars and not any("://" in jar for jar in jars):
            builder = (builder.config("spark.driver.extraClassPath", os.pathsep.join(jars))
                       .config("spark.executor.extraClassPath", os.pathsep.join(jars)))
        elif settings.spark.master.startswith("local") and not any("://" in jar for jar in jars):
            # A local master's executor runs in the driver's JVM, so the connectors go on its class
            # path. As spark.jars, every session would copy them all (~680 MB, most of it the AWS SDK
            # bundle) through Spark's file server into a temporary folder before its first task,
            # and a job killed with SIGKILL would leave that copy behind.
            builder = builder.config("spark.driver.extraClassPath", os.pathsep.join(jars))
        else:
            builder = builder.config("spark.jars", ",".join(jars))
    builder = (
        builder
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # The dedupe state is partitioned this way for the life of a checkpoint (Spark keeps the
        # first value); one partition per local core measured best (bench/streaming.py).
        .config("spark.sql.shuffle.partitions", str(os.cpu_count() or 2))
        # Dedupe state in RocksDB (off-heap, on local disk) rather than in a JVM map copied on
        # every batch; the changelog makes each batch's checkpoint a small append.
        .config("spark.sql.streaming.stateStore.providerClass",
                "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
        # Counting the state's rows costs a RocksDB get before every put (the dedupe's 200K-row
        # batch made 400K gets); nothing here reads that count.
        .config("spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows", "false")
        # After a batch moves the dedupe's watermark, Spark runs one more micro-batch without input
        # only to evict expired ids: a full foreachBatch round with an empty Delta commit (1.3 s of a
        # 10.9 s catch-up of 300K events into ClickHouse + lake) at the end of every catch-up and
        # after each burst. Eviction can wait for the next batch with data; the dedupe emits nothing
        # at eviction, so no output is delayed.
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        # Without Hadoop's native library, every checkpoint file that the default FileContext
        # manager writes forks `chmod` and `readlink`: tens of milliseconds per micro-batch. The
        # FileSystem-based manager renames in Java. (Replacing the local file system with the raw
        # one would also drop the .crc twins, but S3A needs the checksummed one for its buffers.)
        .config("spark.sql.streaming.checkpointFileManagerClass",
                "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager")
        .config("spark.sql.session.timeZone", "UTC")
        # The lake's tables are Delta tables (streaming/stores/lake.py).
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        # Delta rebuilds a table's state (which idempotent writes read) in 50 partitions by default:
        # 50 tiny tasks per commit, ~2 s per micro-batch on two cores. A lake table's log is small.
        .config("spark.databricks.delta.snapshotPartitions", str(os.cpu_count() or 2))
        # Each commit carries the table's idempotent-write versions in its .crc file, so the next
        # batch's txnVersion check reads them there instead of rebuilding the table's state (a
        # "Compute snapshot" job of ~1 s before most appends, seen in Spark's event log).
        .config("spark.databricks.delta.incrementalCommit.enabled", "true")
        .config("spark.databricks.delta.setTransactionsInCrc.writeOnCommit", "true")
        # A job's serving batches and its lake's commits share the executors: the serving batches'
        # tasks go first (scheduler_pools.xml; a job names its pools, streaming.jobs.runner).
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.scheduler.allocation.file", str(SCHEDULER_POOLS))
        # Stopping a query while a Python foreachBatch runs overflows the default stack. Spark's
        # own log lines in the platform's JSON format, from the JVM's first line on.
        .config("spark.driver.extraJavaOptions", f"-Xss16m {java_logging()}")
        .config("spark.executor.extraJavaOptions", java_logging())
        # Parquet that pyarrow and ClickHouse read without surprises.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.hadoop.fs.s3a.endpoint", s3.url)
        .config("spark.hadoop.fs.s3a.endpoint.region", s3.region)
        .config("spark.hadoop.fs.s3a.path.style.access", "true")
        .config("spark.hadoop.fs.s3a.connection.ssl.enabled", str(s3.secure).lower())
        .config("spark.hadoop.fs.s3a.aws.credentials.provider",
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider")
        .config("spark.hadoop.fs.s3a.access.key", s3.access_key)
        .config("spark.hadoop.fs.s3a.secret.key", s3.secret_key)
    )
    if under_spark_submit():
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()  # spark-submit's JVM, whose properties SparkConf() reads
        for key, value in SparkConf().getAll():  # what the command line (a SparkApplication) set wins
            builder = builder.config(key, value)
    for key, value in settings.spark.conf.items():
        builder = builder.config(key, value)
    from pyspark import SparkContext

    if under_spark_submit() or SparkContext._gateway is not None:
        return builder.getOrCreate()  # no JVM to start here
    with jvm_stderr_as_log_lines():
        return builder.getOrCreate()


@contextmanager
def jvm_stderr_as_log_lines() -> Iterator[None]:
    """Start the JVM (and the Python workers it forks) with its stderr read by this process, so
    what it prints outside log4j (the JVM's own warnings, a shaded SLF4J's notes, a worker's
    traceback) becomes one log line each in the process's format, like everything else it writes.

    Only once the process configured its logs (kappa.logs); a JSON line passes through as it is."""
    from kappa import logs

    if logs.process() is None:
        yield
        return
    read, write = os.pipe()
    out = os.fdopen(os.dup(2), "w", buffering=1)  # the real stderr, for the relay
    threading.Thread(target=_relay, args=(read, out), name="jvm-stderr", daemon=True).start()
    saved = os.dup(2)
    os.dup2(write, 2)  # what the JVM inherits as its stderr
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write)


def _relay(read: int, out) -> None:
    log = logging.getLogger("spark.stderr")
    handlers = logging.getLogger().handlers
    formatter = handlers[0].formatter if handlers and handlers[0].formatter else logging.Formatter()
    with os.fdopen(read, "r", errors="replace") as lines:
        for line in lines:
            text = line.rstrip("\n")
            if text.startswith("{") and text.endswith("}"):
                out.write(text + "\n")  # already a log line (log4j2.properties, or ours)
            elif text.strip():
                out.write(formatter.format(log.makeRecord(log.name, logging.WARNING, "jvm", 0, text, None, None)) + "\n")
