"""The S3 server through the minio SDK: bucket, multipart upload, download, listing, signatures."""
import io
import os

import pytest
from minio import Minio
from minio.error import S3Error


def client(s3, secret=None) -> Minio:
    return Minio(s3.endpoint, access_key=s3.access_key, secret_key=secret or s3.secret_key,
                 secure=s3.secure, region=s3.region)


def test_bucket_multipart_get_and_list(s3_settings, unique):
    s3 = client(s3_settings)
    bucket = f"it-{unique}"
    s3.make_bucket(bucket)
    try:
        body = os.urandom(12 * 1024 * 1024 + 123)  # three parts of 5 MiB: a real multipart upload
        result = s3.put_object(bucket, "raw/2026/11/26/part-0.bin", io.BytesIO(body), len(body),
                               part_size=5 * 1024 * 1024)
        assert result.etag.endswith("-3")  # S3 marks multipart ETags with the part count
        for i in range(3):
            s3.put_object(bucket, f"raw/2026/11/27/file-{i}.json", io.BytesIO(b"{}"), 2)
        response = s3.get_object(bucket, "raw/2026/11/26/part-0.bin")
        try:
            assert response.read() == body
        finally:
            response.close()
            response.release_conn()
        listed = sorted(o.object_name for o in s3.list_objects(bucket, prefix="raw/2026/11/27/", recursive=True))
        assert listed == [f"raw/2026/11/27/file-{i}.json" for i in range(3)]
        top = sorted(o.object_name for o in s3.list_objects(bucket, prefix="raw/2026/"))
        assert top == ["raw/2026/11/"]
    finally:
        for obj in s3.list_objects(bucket, recursive=True):
            s3.remove_object(bucket, obj.object_name)
        s3.remove_bucket(bucket)


def test_wrong_secret_is_refused(s3_settings):
    with pytest.raises(S3Error) as refused:
        client(s3_settings, secret="not-the-secret").list_buckets()
    assert refused.value.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied")
