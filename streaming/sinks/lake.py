"""The S3 lake: every change as Parquet, partitioned by event date, with deterministic names per batch.

``s3://<bucket>/<namespace>/<table>/event_date=YYYY-MM-DD/batch-<query>-<batch>-<n>.parquet``:
a replayed batch overwrites exactly the objects it wrote before. Readable by Spark (``s3a://``,
Hive-style partitions) and by pyarrow (give it the partitioning schema, ``event_date: date32``).
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from minio import Minio

from settings import Settings
from streaming.tables import Table

PARTITIONING = ds.partitioning(pa.schema([("event_date", pa.date32())]), flavor="hive")


def filesystem(settings: Settings) -> pafs.S3FileSystem:
    s3 = settings.s3
    return pafs.S3FileSystem(access_key=s3.access_key, secret_key=s3.secret_key, region=s3.region,
                             endpoint_override=s3.endpoint, scheme="https" if s3.secure else "http",
                             allow_bucket_creation=False)


class LakeSink:
    name = "lake"

    def __init__(self, settings: Settings, namespace: str, query_name: str) -> None:
        self.bucket = settings.s3.lake_bucket
        self.namespace = namespace
        self.query_name = query_name
        self.fs = filesystem(settings)
        client = Minio(settings.s3.endpoint, access_key=settings.s3.access_key, secret_key=settings.s3.secret_key,
                       secure=settings.s3.secure, region=settings.s3.region)
        if not client.bucket_exists(self.bucket):
            client.make_bucket(self.bucket)

    def path(self, table: str) -> str:
        return f"{self.bucket}/{self.namespace}/{table}"

    def write(self, table: pa.Table, batch_id: int, spec: Table) -> None:
        if table.num_rows == 0:
            return
        data = table.select(spec.all_columns)
        when = data["event_time"]
        data = data.append_column("event_date", pc.cast(when, pa.date32()))
        ds.write_dataset(
            data, self.path(spec.name), filesystem=self.fs, format="parquet", partitioning=PARTITIONING,
            basename_template=f"batch-{self.query_name}-{batch_id:09d}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
        )

    def close(self) -> None:
        pass
