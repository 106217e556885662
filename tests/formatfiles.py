"""The same requests (tests.logfiles.record dicts, keyed by W3C names) written in
every output CloudFront has: W3C text with any delimiter, JSON lines, Parquet,
and real-time log records in a Kinesis event."""

from __future__ import annotations

import base64
import gzip
import io
import json

from cflogs import formats, realtime
from cflogs.parser import V2_FIELDS

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/cflogs-realtime"
SHARD = "shardId-000000000000"
# Parquet columns CloudFront types as numbers (the others are text).
PARQUET_INTEGERS = {"timestamp", "sc-bytes", "cs-bytes", "c-port", "sc-content-len"}
PARQUET_FLOATS = {"time-taken", "time-to-first-byte"}


def _maybe_gzip(data: bytes, gz: bool) -> bytes:
    return gzip.compress(data, mtime=0) if gz else data


def w3c(
    records: list[dict],
    fields=V2_FIELDS,
    delimiter: str = "\t",
    trailing: str = "",
    gz: bool = True,
) -> bytes:
    """A v2 W3C (or legacy) file; `trailing` ends each line, as AWS's sample's tab."""
    header = f"#Version: 1.0\n#Fields: {' '.join(fields)}\n"
    body = "".join(
        delimiter.join(r.get(name, "-") for name in fields) + trailing + "\n" for r in records
    )
    return _maybe_gzip((header + body).encode(), gz)


def json_lines(
    records: list[dict], fields=V2_FIELDS, gz: bool = True, numbers: bool = True
) -> bytes:
    """v2 JSON: an object a line, W3C names as keys; byte counts as numbers unless
    not `numbers` (every value text)."""
    out = []
    for r in records:
        item = {}
        for name in fields:
            value = r.get(name, "-")
            typed = numbers and name == "sc-bytes" and value.isdigit()
            item[name] = int(value) if typed else value
        out.append(json.dumps(item) + "\n")
    return _maybe_gzip("".join(out).encode(), gz)


def parquet(records: list[dict], fields=V2_FIELDS, gz: bool = False, row_group: int = 2) -> bytes:
    """v2 Parquet: snake_case columns, numbers typed, `-` as null; small row groups
    so that a few records make several."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {}
    for name in fields:
        values = [r.get(name, "-") for r in records]
        values = [None if v == "-" else v for v in values]
        if name in PARQUET_INTEGERS:
            column = pa.array([None if v is None else int(v) for v in values], pa.int64())
        elif name in PARQUET_FLOATS:
            column = pa.array([None if v is None else float(v) for v in values], pa.float64())
        else:
            column = pa.array(values, pa.string())
        columns[formats._key(name)] = column
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, row_group_size=row_group)
    return _maybe_gzip(buffer.getvalue(), gz)


def realtime_line(r: dict, fields=realtime.DEFAULT_FIELDS) -> str:
    """A real-time log record: cs-host the viewer's host, x-host-header the
    distribution's, cs-uri-stem with the query string, timestamp with milliseconds."""
    values = []
    for field in fields:
        if field == "timestamp":
            value = r["timestamp"] + ".123"
        elif field == "cs-uri-stem":
            query = r.get("cs-uri-query", "-")
            value = r["cs-uri-stem"] + ("" if query == "-" else "?" + query)
        else:
            value = r.get(formats.w3c_name(field, realtime=True), "-")
        values.append(value)
    return "\t".join(values) + "\n"


FIRST_SEQUENCE = 49590338271490256608559692538361571095921575989136588898


def kinesis_event(lines: list[str], first_sequence: int = FIRST_SEQUENCE) -> dict:
    """A Kinesis event for the Realtime function: a record a line, one shard."""
    records = []
    for n, line in enumerate(lines):
        sequence = str(first_sequence + n)
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"key-{n}",
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(line.encode()).decode(),
                    "approximateArrivalTimestamp": 1739700002.5,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{SHARD}:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/cflogs-realtime",
                "awsRegion": "us-east-1",
                "eventSourceARN": STREAM_ARN,
            }
        )
    return {"Records": records}
