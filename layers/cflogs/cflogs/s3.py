"""S3 locations and S3 objects as ingest sources."""

from __future__ import annotations

from urllib.parse import urlparse

from botocore.exceptions import ClientError

from . import aws
from .ingest import ObjectGone, Source


def parse_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix); the prefix may be empty."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3://bucket/prefix URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def s3_source(bucket: str, key: str, etag: str | None = None, size: int | None = None) -> Source:
    """An S3 object as an ingest Source. Opening it records the version actually
    read (ETag, size), so the ledger describes what was loaded. An object deleted
    since it was named raises ObjectGone."""
    source = Source(bucket=bucket, key=key, etag=etag, size=size, open=lambda: None)

    def open_object():
        try:
            response = aws.client("s3").get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectGone(f"s3://{bucket}/{key} was deleted before it was read") from exc
            raise
        source.etag = response["ETag"].strip('"')
        source.size = response["ContentLength"]
        return response["Body"]

    source.open = open_object
    return source
