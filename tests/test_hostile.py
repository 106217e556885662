"""One hostile request in an otherwise good log object, through the real ingest
handler (moto S3) and the real database: the object loads, everyone else's page
views are right, and the hostile value is cleaned or its line rejected."""

from __future__ import annotations

import gzip
import json

import pytest

from cflogs import values
from cflogs.invoke import find_function, load_handler
from cflogs.parser import V2_FIELDS
from tests.logfiles import fields_for, lines, log_bytes, record
from tests.test_ingest_handler import EVENTS, ROOT, keys_of, run

KEY = keys_of("s3-put.json")[0]  # cloudfront/E2EXAMPLE.2025-02-16-10.a1b2c3d4.gz
GOOD = 5


def good_records() -> list[dict]:
    return [
        record(ts=f"2025-02-16 10:0{i}:00", path=f"/good{i}", ip=f"192.0.2.{i + 1}")
        for i in range(GOOD)
    ]


def load_with(s3, hostile: dict, conn) -> dict:
    """Put a file of GOOD page views and the hostile one in the middle, invoke
    the handler with the sample S3 event; the ledger row and the good rows."""
    records = good_records()
    records.insert(2, hostile)
    s3.put_object(Bucket="cflogs-example-logs", Key=KEY, Body=log_bytes(records))
    result = run("s3-put.json")["objects"][0]
    assert result["status"] == "done", result
    good = conn.execute(
        "SELECT path, host, status, bytes FROM page_views WHERE path LIKE '/good%' ORDER BY path"
    ).fetchall()
    assert good == [(f"/good{i}", "www.example.com", 200, 1234) for i in range(GOOD)]
    return result


def hostile_row(conn) -> dict | None:
    row = conn.execute(
        "SELECT * FROM page_views WHERE path NOT LIKE '/good%%'", prepare=False
    ).fetchone()
    if row is None:
        return None
    names = [c.name for c in conn.execute("SELECT * FROM page_views LIMIT 0").description]
    return dict(zip(names, row, strict=True))


@pytest.mark.parametrize(
    ("field", "value", "column", "stored"),
    [
        ("cs-uri-stem", "/a%00b", "path", "/a\ufffdb"),
        ("cs-uri-stem", "/a%2500b", "path", "/a\ufffdb"),
        ("cs-uri-stem", "/line%0Abreak%E2%80%A8here", "path", "/line\ufffdbreak\ufffdhere"),
        ("cs-uri-query", "utm_source=%00&utm_medium=a%2500b", "utm_source", "\ufffd"),
        ("cs(Referer)", "https://evil.example/%00x", "referrer_path", "/\ufffdx"),
        ("cs(User-Agent)", "Mozilla/5.0%2520%00(X11)", "browser", "Other"),
        ("x-host-header", "www.example.com\x01", "host", "www.example.com\ufffd"),
        ("x-host-header", "h" * 5000, "host", "h" * values.TEXT_LIMITS["host"]),
        ("x-edge-location", "FRA\x7f" + "x" * 3000, "edge_location", None),
        ("x-edge-request-id", "id\x01" + "z" * 500, "request_id", None),
        ("time-taken", "1e39", "time_taken", None),
        ("time-taken", "nan", "time_taken", None),
        ("time-taken", "-1", "time_taken", None),
    ],
)
def test_a_value_that_cannot_be_stored_is_cleaned(s3, conn, field, value, column, stored):
    hostile = record(ts="2025-02-16 10:30:00", path="/hostile")
    hostile[field] = value
    result = load_with(s3, hostile, conn)
    assert result["rejected"] == 0
    row = hostile_row(conn)
    assert row is not None
    if stored is not None:
        assert row[column] == stored
    elif column == "time_taken":
        assert row[column] is None
    else:  # printable and cut to the column's length
        assert row[column].isprintable() and len(row[column]) <= values.TEXT_LIMITS[column]
    traffic = conn.execute("SELECT host, edge FROM traffic_hourly").fetchall()
    assert all(h.isprintable() and e.isprintable() for h, e in traffic)


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (Linux; Android 10;  )",
        "Mozilla/5.0%20(Linux;%20Android%2010;%20%09)",
        "Mozilla/5.0%20(Linux;%20Android%2010;%20%0A)",
        "Mozilla/5.0%20(Linux;%20Android%2010;%20%E2%80%A8)",
        "Mozilla/5.0%2520(Linux;%2520Android%252010;%2520%2520)",
    ],
)
def test_a_user_agent_that_breaks_the_device_regexes_still_loads(s3, conn, agent):
    hostile = record(ts="2025-02-16 10:30:00", path="/hostile")
    hostile["cs(User-Agent)"] = agent
    load_with(s3, hostile, conn)
    row = hostile_row(conn)
    assert row["os"] == "Android" and row["os_version"] == "10" and not row["is_bot"]


PARTITIONS = """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'page_views'::regclass"""


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("sc-bytes", str(2**63), "sc-bytes out of range"),
        ("sc-bytes", "9" * 40, "sc-bytes out of range"),
        ("date", "0001-01-01", "date outside the object's window"),
        ("date", "1970-01-01", "date outside the object's window"),
        ("date", "9999-12-31", "date outside the object's window"),
        ("date", "2025-02-30", "bad date/time"),
        ("time", "24:00:00", "bad date/time"),
        ("x-edge-request-id", "raw\x00nul", "NUL in a line"),  # a broken file, not a request
    ],
)
def test_a_line_that_cannot_be_right_is_rejected_with_its_reason(s3, conn, field, value, reason):
    hostile = record(ts="2025-02-16 10:30:00", path="/hostile")
    hostile[field] = value
    before = set(conn.execute(PARTITIONS).fetchall())  # other tests' stay in the database
    result = load_with(s3, hostile, conn)
    assert result["rejected_by_reason"] == {reason: 1}
    assert hostile_row(conn) is None
    ledger = conn.execute("SELECT rejected, rejected_by_reason FROM log_files").fetchone()
    assert ledger == (1, {reason: 1})
    made = set(conn.execute(PARTITIONS).fetchall()) - before
    assert {m for (m,) in made} <= {"page_views_2025_02"}  # no partition for year 9999


def test_v2_epoch_timestamps_outside_the_window_are_rejected(s3, conn):
    records = good_records()
    far = record(ts="2025-02-16 10:30:00", path="/hostile")
    far["timestamp"] = "253402300799"  # 9999-12-31
    records.insert(1, far)
    fields = [name for name in V2_FIELDS if name not in ("date", "time")]  # epoch only
    text = f"#Version: 1.0\n#Fields: {' '.join(fields)}\n" + "\n".join(lines(records, fields))
    s3.put_object(Bucket="cflogs-example-logs", Key=KEY, Body=gzip.compress(text.encode()))
    result = run("s3-put.json")["objects"][0]
    assert result["status"] == "done" and result["page_views"] == GOOD
    assert result["rejected_by_reason"] == {"date outside the object's window": 1}


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b'{"timestamp": 1739700000, "c-ip": "192.0.2.1"}\n', "lacks cs-method"),  # JSON, no log
        (b"[1, 2, 3]\n", "JSON, not tab-separated text"),
        (b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00\x12\x00\x00", "Parquet"),
        (bytes(range(256)) * 4, "binary"),
        (b"<html><body>not found</body></html>\n", "XML or HTML"),
    ],
)
def test_an_object_of_another_kind_fails_once_for_good(s3, conn, body, what):
    s3.put_object(Bucket="cflogs-example-logs", Key=KEY, Body=gzip.compress(body))
    result = run("s3-put.json")["objects"][0]  # returned, not raised: no retry
    assert result["status"] == "failed" and what in result["reason"]
    status, final, reason = conn.execute("SELECT status, final, reason FROM log_files").fetchone()
    assert (status, final) == ("failed", True) and what in reason


def test_an_object_whose_every_line_is_rejected_is_failed_not_done(s3, conn):
    fields = fields_for(33)
    header = f"#Version: 1.0\n#Fields: {' '.join(fields)}\n"
    rows = [",".join(r.get(name, "-") for name in fields) for r in good_records()]
    body = header + "\n".join(rows) + "\n"  # commas: a delimiter its header does not declare
    s3.put_object(Bucket="cflogs-example-logs", Key=KEY, Body=body.encode())
    result = run("s3-put.json")["objects"][0]
    assert result["status"] == "failed" and f"all {GOOD} lines rejected" in result["reason"]
    assert conn.execute("SELECT status, final FROM log_files").fetchone() == ("failed", True)
    assert conn.execute("SELECT count(*) FROM page_views").fetchone()[0] == 0


class ShortContext:
    """A Lambda context with almost no time left."""

    function_name = "IngestFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:IngestFunction"
    aws_request_id = "c0ffee00-0000-4000-8000-00000000dead"

    def get_remaining_time_in_millis(self) -> int:
        return 1


def test_the_handler_stops_before_its_deadline_and_leaves_the_object_for_retry(s3, conn):
    s3.put_object(Bucket="cflogs-example-logs", Key=KEY, Body=log_bytes(good_records()))
    run("s3-put.json")  # the template's environment, loaded once; then a late invocation
    conn.execute("TRUNCATE log_files, page_views")
    conn.commit()
    handler = load_handler(find_function(ROOT / "template.yaml", "IngestFunction"))
    event = json.loads((EVENTS / "s3-put.json").read_text())
    with pytest.raises(Exception, match="deadline"):
        handler(event, ShortContext())
    status, final, reason = conn.execute("SELECT status, final, reason FROM log_files").fetchone()
    assert (status, final) == ("failed", False) and "deadline" in reason
    assert conn.execute("SELECT count(*) FROM page_views").fetchone()[0] == 0
    assert run("s3-put.json")["objects"][0]["status"] == "done"  # the retry loads it
