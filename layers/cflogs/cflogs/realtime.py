"""CloudFront real-time logs from a Kinesis data stream, loaded as standard logs are.

A batch of one shard becomes one object of the log_files ledger, in bucket
`kinesis:<stream>` under the key `<shard>/<first>-<last>` (sequence numbers,
zero-padded so that keys sort as the numbers do), loaded in one transaction by
ingest.ingest. Kinesis hands a shard's records to one invocation at a time, in
sequence order, and a retry starts again from a checkpoint: so every record at or
below the shard's highest sequence number already loaded was loaded, and is
skipped. A replayed batch, or one retried from the middle, loads nothing twice."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from . import formats, ingest

# The fields of a real-time log configuration that cflogs reads, in the order the
# CloudFront console lists them; set REALTIME_FIELDS to the configuration's own list.
DEFAULT_FIELDS = (
    "timestamp",
    "c-ip",
    "time-to-first-byte",
    "sc-status",
    "sc-bytes",
    "cs-method",
    "cs-protocol",
    "cs-host",
    "cs-uri-stem",
    "cs-bytes",
    "x-edge-location",
    "x-edge-request-id",
    "x-host-header",
    "time-taken",
    "cs-protocol-version",
    "c-ip-version",
    "cs-user-agent",
    "cs-referer",
    "cs-cookie",
    "cs-uri-query",
    "x-edge-response-result-type",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-result-type",
    "fle-encrypted-fields",
    "fle-status",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
    "c-port",
    "x-edge-detailed-result-type",
)
SEQUENCE_DIGITS = 64  # Kinesis sequence numbers are decimal strings of up to 128 bits


def configured_fields(env: dict | None = None) -> list[str]:
    """REALTIME_FIELDS: the configuration's field names, comma- or space-separated."""
    value = (os.environ if env is None else env).get("REALTIME_FIELDS", "")
    fields = value.replace(",", " ").split()
    return fields or list(DEFAULT_FIELDS)


@dataclass(frozen=True)
class Record:
    sequence_number: str
    data: bytes


def ledger_bucket(stream_arn: str) -> str:
    """`kinesis:<stream name>` for a stream ARN (or a bare name)."""
    return "kinesis:" + stream_arn.rsplit("/", 1)[-1]


def _sequence(number: str) -> int:
    return int(number)


def loaded_up_to(conn: psycopg.Connection, bucket: str, shard: str) -> int:
    """The highest sequence number of the shard loaded so far (-1 for none)."""
    key = conn.execute(
        """SELECT max(key) FROM log_files
           WHERE bucket = %s AND starts_with(key, %s) AND status = 'done'""",
        (bucket, f"{shard}/"),
    ).fetchone()[0]
    return -1 if key is None else int(key.rsplit("-", 1)[1])


def batch_key(shard: str, first: int, last: int) -> str:
    return f"{shard}/{first:0{SEQUENCE_DIGITS}d}-{last:0{SEQUENCE_DIGITS}d}"


def lines_of(records: Iterable[Record]) -> list[str]:
    """The log lines of the records' data (one line a record, as CloudFront sends)."""
    lines = []
    for record in records:
        text = record.data.decode("utf-8", errors="replace")
        lines.extend(line for line in text.split("\n") if line)  # not splitlines(): \x1c...
    return lines


def load_shard_batch(
    conn: psycopg.Connection,
    stream_arn: str,
    shard: str,
    records: list[Record],
    fields: list[str],
    pipeline: ingest.Pipeline,
) -> ingest.FileResult | None:
    """Load the records of one shard not loaded yet; None when there are none."""
    bucket = ledger_bucket(stream_arn)
    with conn.transaction():  # its own: ingest() runs one of its own too
        done = loaded_up_to(conn, bucket, shard)
    by_number = {_sequence(r.sequence_number): r for r in records}  # each once
    fresh = [by_number[n] for n in sorted(by_number) if n > done]
    if not fresh:
        return None
    data = formats.realtime_text(fields, lines_of(fresh)).encode()
    first, last = (_sequence(r.sequence_number) for r in (fresh[0], fresh[-1]))
    source = ingest.Source(
        bucket=bucket,
        key=batch_key(shard, first, last),
        etag=None,
        size=len(data),
        open=lambda: io.BytesIO(data),
    )
    return ingest.ingest(conn, source, pipeline)
