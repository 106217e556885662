"""Every output CloudFront writes, through the real handlers and the database:
legacy and v2 W3C text (any delimiter, trailing tab), v2 JSON, v2 Parquet, and
real-time logs from Kinesis; the same requests in each make the same rows."""

import base64
import io
import json
from pathlib import Path

import boto3
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from cflogs import aws, db, formats, ingest, parser, realtime, sessions
from cflogs.invoke import Functions, invoke
from tests import formatfiles as ff
from tests.logfiles import GOOGLEBOT, IPHONE, record

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "cflogs-example-logs"
HIVE = "AWSLogs/123456789012/CloudFront/DistributionId=E2EXAMPLE/year=2025/month=02/day=16/hour=10/"
CUSTOM = "cf-v2/E2EXAMPLE/2025/02/16/10/"


def requests() -> list[dict]:
    """Requests in the shape of AWS's documented examples: pages, an asset, a bot,
    a viewer gone before the response (000), IPv6, a campaign and a search referrer,
    a 2013-2019 double-encoded user agent, two hours."""
    return [
        record(ts="2025-02-16 10:00:01", path="/index.html", query="utm_source=news&utm_medium=a"),
        record(ts="2025-02-16 10:00:02", path="/css/site.css", content_type="text/css", size=4210),
        record(
            ts="2025-02-16 10:03:09",
            path="/pricing",
            ip="2001:db8::17",
            ua=IPHONE,
            referrer="https://www.google.com/search?q=cflogs",
        ),  # fmt: skip
        record(ts="2025-02-16 10:04:00", path="/", ua=GOOGLEBOT, ip="192.0.2.77"),
        record(ts="2025-02-16 10:05:30", path="/docs/", double=True),
        record(
            ts="2025-02-16 11:59:59",
            path="/missing",
            status=404,
            ip="198.51.100.4",
            referrer="https://www.example.com/index.html",
        ),  # fmt: skip
        record(ts="2025-02-16 11:00:00", path="/big.zip", status=0, size=0, content_type="-"),
    ]


# ---------------------------------------------------------------- one format at a time


@pytest.fixture
def s3(env):
    with mock_aws():
        aws.reset_clients()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
    aws.reset_clients()


def s3_event(key: str) -> dict:
    event = json.loads((ROOT / "events" / "s3-put.json").read_text())
    event["Records"][0]["s3"]["object"]["key"] = key.replace("=", "%3D")
    return event


def load_through_handler(s3, key: str, data: bytes) -> dict:
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return invoke("IngestFunction", s3_event(key), ROOT / "template.yaml")["objects"][0]


def stored(conn) -> list[tuple]:
    return conn.execute(
        "SELECT path, host, status, bytes, edge_location, request_id FROM page_views ORDER BY ts"
    ).fetchall()


EXPECTED = [
    ("/index.html", "www.example.com", 200, 1234, "FRA56-P1"),
    ("/pricing", "www.example.com", 200, 1234, "FRA56-P1"),
    ("/", "www.example.com", 200, 1234, "FRA56-P1"),
    ("/docs/", "www.example.com", 200, 1234, "FRA56-P1"),
]


FILES = {
    # AWS's sample legacy file ends its lines with a tab
    "legacy, trailing tab": (
        "cf/E2EXAMPLE.2025-02-16-10.a1b2c3d4.gz",
        lambda rs: ff.w3c(rs, parser.LEGACY_FIELDS, trailing="\t"),
    ),
    "v2 W3C, Hive path": (HIVE + "E2EXAMPLE.2025-02-16-10.b2c3.gz", lambda rs: ff.w3c(rs)),
    "v2 W3C, pipe delimiter, custom path": (
        CUSTOM + "E2EXAMPLE.2025-02-16-10.c3d4.gz",
        lambda rs: ff.w3c(rs, delimiter="|"),
    ),
    "v2 JSON, Hive path": (HIVE + "E2EXAMPLE.2025-02-16-10.d4e5.gz", ff.json_lines),
    "v2 JSON, not gzipped": (
        CUSTOM + "E2EXAMPLE.2025-02-16-10.e5f6.log",
        lambda rs: ff.json_lines(rs, gz=False),
    ),
    "v2 Parquet, Hive path": (HIVE + "E2EXAMPLE.2025-02-16-10.f6a7.parquet", ff.parquet),
    "v2 Parquet, gzipped": (
        CUSTOM + "E2EXAMPLE.2025-02-16-10.a7b8.parquet.gz",
        lambda rs: ff.parquet(rs, gz=True),
    ),
}


@pytest.mark.parametrize("name", FILES)
def test_each_format_loads_through_the_ingest_handler(s3, conn, name):
    key, write = FILES[name]
    result = load_through_handler(s3, key, write(requests()))
    assert (result["status"], result["lines"], result["rejected"]) == ("done", 7, 0), result
    assert (result["page_views"], result["assets"]) == (4, 1)
    assert [row[:5] for row in stored(conn)] == EXPECTED
    assert all(row[5].startswith("req") for row in stored(conn))


def test_a_field_missing_from_a_custom_v2_selection_is_empty(s3, conn):
    fields = ["timestamp", "c-ip", "cs-method", "cs-uri-stem", "sc-status", "cs(User-Agent)"]
    result = load_through_handler(s3, CUSTOM + "E2.2025-02-16-10.x.gz", ff.w3c(requests(), fields))
    assert result["status"] == "done" and result["page_views"] == 4
    assert {row[1:] for row in stored(conn)} == {("", 200, 0, "", "")}


def test_delimiter_is_sniffed_from_the_first_data_line():
    names = " ".join(parser.V2_FIELDS)
    line = "|".join(["x"] * len(parser.V2_FIELDS))
    assert formats.sniff_delimiter(names, line + "\n") == "|"
    assert formats.sniff_delimiter(names, line.replace("|", " ") + "\n") == " "
    assert formats.sniff_delimiter(names, line.replace("|", "\t") + "\t\n") == "\t"
    assert formats.sniff_delimiter(names, "too|few\n") == "\t"  # rejected, counted


def test_field_names_in_every_spelling():
    assert formats.w3c_name("cs_user_agent") == "cs(User-Agent)"
    assert formats.w3c_name("cs-referer") == "cs(Referer)"
    assert formats.w3c_name("timestamp_ms") == "timestamp(ms)"
    assert formats.w3c_name("cs_host") == "cs(Host)"
    assert formats.w3c_name("cs-host", realtime=True) == "x-host-header"
    assert formats.w3c_name("x-host-header", realtime=True) == "cs(Host)"


# ---------------------------------------------------------------- real-time logs


def run_realtime(event: dict):
    return invoke("RealtimeFunction", event, ROOT / "template.yaml")


def page_views(conn) -> list[tuple]:
    return conn.execute(
        "SELECT request_id, ts, host, path, query, referrer_host FROM page_views ORDER BY ts"
    ).fetchall()


def test_realtime_records_load_once_whatever_is_replayed(env, conn):
    lines = [ff.realtime_line(r) for r in requests()]
    assert run_realtime(ff.kinesis_event(lines[:4])) == {"batchItemFailures": []}
    first = page_views(conn)
    assert [row[2:5] for row in first] == [
        ("www.example.com", "/index.html", "utm_source=news&utm_medium=a"),
        ("www.example.com", "/pricing", None),
        ("www.example.com", "/", None),
    ]
    assert first[1][5] == "www.google.com"
    run_realtime(ff.kinesis_event(lines[:4]))  # the same batch again
    assert page_views(conn) == first
    # a retry from the third record on, with two new ones: only those load
    retry = ff.kinesis_event(lines[2:], first_sequence=ff.FIRST_SEQUENCE + 2)
    assert run_realtime(retry) == {"batchItemFailures": []}
    assert page_views(conn)[:3] == first and len(page_views(conn)) == 4
    ledger = conn.execute("SELECT bucket, key, lines, status FROM log_files ORDER BY key")
    ledger = ledger.fetchall()
    assert [(row[0], row[2], row[3]) for row in ledger] == [
        ("kinesis:cflogs-realtime", 4, "done"),
        ("kinesis:cflogs-realtime", 3, "done"),
    ]
    assert ledger[1][1] == realtime.batch_key(
        ff.SHARD, ff.FIRST_SEQUENCE + 4, ff.FIRST_SEQUENCE + 6
    )
    hourly = conn.execute("SELECT sum(requests) FROM traffic_hourly").fetchone()[0]
    assert hourly == 7


def test_a_failed_realtime_load_reports_its_first_record_for_the_retry(env, conn, monkeypatch):
    functions = Functions(ROOT / "template.yaml")
    event = ff.kinesis_event([ff.realtime_line(r) for r in requests()[:2]])

    def broken(*args, **kwargs):
        raise psycopg.OperationalError("server closed the connection")

    monkeypatch.setattr(realtime, "load_shard_batch", broken)
    assert functions("RealtimeFunction", event) == {
        "batchItemFailures": [{"itemIdentifier": str(ff.FIRST_SEQUENCE)}]
    }
    monkeypatch.undo()
    assert functions("RealtimeFunction", event) == {"batchItemFailures": []}
    assert len(page_views(conn)) == 1


def test_realtime_fields_come_from_the_configuration(monkeypatch):
    monkeypatch.setenv("REALTIME_FIELDS", "timestamp, c-ip,cs-method  cs-uri-stem,sc-status")
    assert realtime.configured_fields() == [
        "timestamp",
        "c-ip",
        "cs-method",
        "cs-uri-stem",
        "sc-status",
    ]
    monkeypatch.delenv("REALTIME_FIELDS")
    assert realtime.configured_fields() == list(realtime.DEFAULT_FIELDS)


# ---------------------------------------------------------------- every format, same rows


def load_into_its_own_database(server_url, settings, name: str, data) -> dict:
    with (
        db.scratch_database(server_url, "cflogs_fmt") as url,
        psycopg.connect(url, prepare_threshold=None) as conn,
    ):
        db.migrate(conn)
        conn.commit()
        pipeline = ingest.Pipeline(settings)
        if name == "real-time":
            records = [
                realtime.Record(str(ff.FIRST_SEQUENCE + n), line.encode())
                for n, line in enumerate(data)
            ]
            result = realtime.load_shard_batch(
                conn, ff.STREAM_ARN, ff.SHARD, records, list(realtime.DEFAULT_FIELDS), pipeline
            )
        else:
            source = ingest.Source("logs", name, "etag", len(data), lambda: io.BytesIO(data))
            result = ingest.ingest(conn, source, pipeline)
        assert (result.status, result.rejected) == ("done", 0), result
        columns = [
            c
            for (c,) in conn.execute(
                """SELECT column_name FROM information_schema.columns
                   WHERE table_name = 'page_views' AND column_name <> 'file_id'
                   ORDER BY ordinal_position"""
            )
        ]
        rows = conn.execute(
            f"SELECT {', '.join(columns)} FROM page_views ORDER BY request_id"
        ).fetchall()
        hourly = conn.execute(
            "SELECT * FROM traffic_hourly ORDER BY hour, host, edge, status_class, kind"
        ).fetchall()
        sessions.stitch(conn, 30)
        visits = conn.execute(  # sessions as reports see them (ids are random)
            """SELECT visitor_id, started_at, ended_at, page_views, landing_page, exit_page,
                      referrer_host, referrer_category, utm_source
               FROM sessions ORDER BY visitor_id, started_at"""
        ).fetchall()
        return {"columns": columns, "page_views": rows, "traffic_hourly": hourly,
                "sessions": visits}  # fmt: skip


def test_the_same_requests_in_every_format_store_the_same_rows(server_url, env):
    rs = requests()
    outputs = {
        "legacy TSV": ff.w3c(rs, parser.LEGACY_FIELDS),
        "v2 W3C, tab": ff.w3c(rs),
        "v2 W3C, pipe": ff.w3c(rs, delimiter="|", gz=False),
        "v2 JSON": ff.json_lines(rs),
        "v2 Parquet": ff.parquet(rs),
        "real-time": [ff.realtime_line(r) for r in rs],
    }
    stored_by = {
        name: load_into_its_own_database(server_url, env, name, data)
        for name, data in outputs.items()
    }
    legacy = stored_by.pop("legacy TSV")
    assert len(legacy["page_views"]) == 4 and len(legacy["traffic_hourly"]) >= 3
    assert len(legacy["sessions"]) == 2  # /index.html and /docs/ are one visit; bots make none
    assert {"visitor_id", "browser", "referrer_host", "country"} <= set(legacy["columns"])
    for name, got in stored_by.items():
        assert got["page_views"] == legacy["page_views"], name
        assert got["traffic_hourly"] == legacy["traffic_hourly"], name
        assert got["sessions"] == legacy["sessions"], name


# ---------------------------------------------------------------- hostile input


def good_json(numbers=True, **values) -> str:
    item = json.loads(ff.json_lines([record()], gz=False, numbers=numbers))
    item.update(values)
    return json.dumps(item)


HOSTILE_JSON = [
    '{"timestamp": "1739700001", "c-ip": ',  # cut short
    "[1, 2, 3]",
    '"just text"',
    good_json(**{"sc-status": {"code": 200}}),  # wrong types
    good_json(**{"cs-uri-stem": ["/a"]}),
    good_json(**{"sc-status": True}),
    good_json(**{"cs-uri-stem": "/a\u0000b"}),  # NUL
    good_json(timestamp=1e400, date="-", time="-"),  # huge numbers
    good_json(**{"sc-status": 10**30}),
    good_json(**{"sc-status": None}),  # missing fields
    json.dumps({"c-ip": "192.0.2.1"}),
    good_json(date="#Fields: c-ip"),  # a value that looks like a header
]


@pytest.mark.parametrize("numbers", [True, False])  # False: the quick path for text values
def test_hostile_json_lines_fail_lines_never_the_object(s3, conn, numbers):
    first = good_json(numbers=numbers)
    lines = [first, *HOSTILE_JSON, good_json(**{"cs-uri-stem": "/tab\there"})]
    result = load_through_handler(s3, HIVE + "E2.2025-02-16-10.h.gz", "\n".join(lines).encode())
    assert result["status"] == "done"
    assert (result["lines"], result["rejected"], result["page_views"]) == (14, 12, 2)
    assert {row[0] for row in stored(conn)} == {
        "/",
        "/tab\ufffdhere",
    }  # the tab cleaned, as in text


def test_hostile_parquet_values_fail_rows_never_the_object(s3, conn):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = ["1739700001", "1739700002", "99999999999999999999", "1739700004", "1739700005"]
    table = pa.table(
        {
            "timestamp": pa.array(good, pa.string()),
            "c_ip": pa.array(["192.0.2.1"] * 5),
            "cs_method": pa.array(["GET", "GET", "GET", None, "GET"]),
            "cs_uri_stem": pa.array(["/", "/nul\x00", "/huge", "/", "/ok"]),
            "sc_status": pa.array([200, 200, 200, 200, 2**62], pa.int64()),
            "cs_user_agent": pa.array([b"curl/8", b"\xff\xfe", b"x", b"y", b"z"], pa.binary()),
            "sc_content_type": pa.array(["text/html"] * 5),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=2)
    result = load_through_handler(s3, HIVE + "E2.2025-02-16-10.p.parquet", buffer.getvalue())
    assert result["status"] == "done"
    # NUL, a timestamp past any date and a status of 2**62 fail their rows; a
    # missing method is only a value, as in a text log (a request, not a page view)
    assert (result["lines"], result["rejected"], result["page_views"]) == (5, 3, 1)
    assert conn.execute("SELECT sum(requests) FROM traffic_hourly").fetchone()[0] == 2


def test_a_parquet_file_without_the_needed_columns_is_failed_not_retried(s3, conn):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"c_ip": ["192.0.2.1"]}), buffer)
    result = load_through_handler(s3, HIVE + "E2.2025-02-16-10.q.parquet", buffer.getvalue())
    assert result["status"] == "failed" and "lacks" in result["reason"]
    truncated = buffer.getvalue()[:-20]
    result = load_through_handler(s3, HIVE + "E2.2025-02-16-10.r.parquet", truncated)
    assert result["status"] == "failed" and "Parquet" in result["reason"]


def test_hostile_realtime_records_fail_records_never_the_batch(env, conn):
    good = ff.realtime_line(record())
    values = good.rstrip("\n").split("\t")
    status = realtime.DEFAULT_FIELDS.index("sc-status")
    stamp = realtime.DEFAULT_FIELDS.index("timestamp")
    lines = [
        good,
        "only\ttwo\n",
        good.replace("/", "/\x00", 1),
        "\t".join(values[:status] + ["99999999999999999999"] + values[status + 1 :]) + "\n",
        "\t".join(["1e308"] + values[stamp + 1 :]) + "\n",
        "(replaced by bytes that are not UTF-8)",
    ]
    event = ff.kinesis_event(lines)
    event["Records"][-1]["kinesis"]["data"] = base64.b64encode(b"\xff\xfe\x00garbage").decode()
    assert run_realtime(event) == {"batchItemFailures": []}
    row = conn.execute("SELECT status, lines, rejected, page_views FROM log_files").fetchone()
    assert row == ("done", 6, 5, 1)


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(parser.WANTED)), JSON_VALUES, max_size=8))
def test_any_json_values_make_a_record_or_a_rejected_line(values):
    line = json.loads(good_json())
    line.update(values)
    data = (good_json() + "\n" + json.dumps(line) + "\n").encode()
    stats = parser.Stats()
    with formats.open_records(io.BytesIO(data), stats) as reading:
        got = list(reading)
    assert stats.lines == 2 and len(got) + stats.rejected_total == 2
    for rec in got:
        assert "\x00" not in "".join(str(v) for v in rec)
        assert isinstance(rec[parser.RECORD.index("status")], int)


def test_a_record_twice_in_one_batch_and_a_trailing_tab_load_once(env, conn):
    line = ff.realtime_line(requests()[0]).replace("\n", "\t\n")
    event = ff.kinesis_event([line])
    event["Records"].append(event["Records"][0])
    assert run_realtime(event) == {"batchItemFailures": []}
    assert [row[3:5] for row in page_views(conn)] == [
        ("/index.html", "utm_source=news&utm_medium=a")
    ]


def test_without_pyarrow_a_parquet_object_fails_with_the_reason(s3, conn, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    data = ff.parquet(requests())
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    result = load_through_handler(s3, HIVE + "E2.2025-02-16-10.n.parquet", data)
    assert result["status"] == "failed" and "ParquetLogs=true" in result["reason"]
