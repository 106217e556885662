import gzip
import io

import pytest

from cflogs import parser
from cflogs.classify import ASSET, OTHER, PAGE, kind_of
from tests.logfiles import CHROME, encode, log_bytes, log_text, record


def parse_text(text: str) -> tuple[list[tuple], parser.Stats]:
    stats = parser.Stats()
    lines = parser.open_lines(io.BytesIO(text.encode()))
    return list(parser.parse(lines, stats)), stats


def as_dict(rec: tuple) -> dict:
    return dict(zip(parser.RECORD, rec, strict=True))


@pytest.mark.parametrize("count", [*parser.LEGACY_COUNTS, 39])
def test_every_layout_parses_by_header(count):
    text = log_text([record(path="/pricing", ip="2001:db8::17", size=512)], count=count)
    records, stats = parse_text(text)
    assert stats.rejected_total == 0 and stats.lines == 1
    got = as_dict(records[0])
    assert got["date"] == "2025-02-16" and got["time"] == "10:00:01" and got["hour"] == "10"
    assert got["path"] == "/pricing"
    assert got["ip"] == "2001:db8::17"
    assert got["bytes"] == 512 and got["status"] == 200
    # x-host-header (18 fields on) wins over cs(Host)
    expected_host = "www.example.com" if count >= 18 else "d111111abcdef8.cloudfront.net"
    assert got["host"] == expected_host
    assert got["content_type"] == ("text/html" if count >= 33 else "-")


@pytest.mark.parametrize("count", [12, 33])  # the last field read, or not
def test_header_separated_by_tab_and_crlf_lines(count):
    text = log_text([record(query="a=1")], header_sep="\t", count=count)
    text = (text + "2025-02-16\t10:00:01\tcut short\n").replace("\n", "\r\n")
    records, stats = parse_text(text)
    assert len(records) == 1 and as_dict(records[0])["query"] == "a=1"
    assert stats.rejected_total == 1
    assert [sample[-5:] for sample in stats.samples.popitem()[1]] == ["short"]


def test_v2_file_with_only_epoch_timestamp():
    fields = ["timestamp", "DistributionId", "c-ip", "cs-method", "cs-uri-stem", "sc-status"]
    text = f"#Fields: {' '.join(fields)}\n1739700001\tE2EXAMPLE\t192.0.2.1\tGET\t/\t200\n"
    records, _ = parse_text(text)
    assert as_dict(records[0])["date"] == "2025-02-16"
    assert as_dict(records[0])["time"] == "10:00:01"
    assert as_dict(records[0])["hour"] == "10"


def test_unknown_fields_are_ignored():
    text = "#Fields: date time c-ip cs-method cs-uri-stem sc-status x-future-field\n"
    text += "2025-02-16\t10:00:01\t192.0.2.1\tGET\t/a\t200\tsomething\n"
    records, stats = parse_text(text)
    assert len(records) == 1 and stats.rejected_total == 0


@pytest.mark.parametrize("double", [False, True])
def test_user_agent_single_and_double_encoded(double):
    records, _ = parse_text(log_text([record(ua=CHROME, double=double)]))
    raw = as_dict(records[0])["user_agent"]
    assert ("%2520" in raw) is double
    assert parser.decode(raw) == CHROME


def test_decoding_rule_for_query_and_referrer():
    assert parser.decode("-") == ""
    assert parser.decode("https%253A//www.google.com/search%253Fq=caf%25C3%25A9") == (
        "https://www.google.com/search?q=café"
    )
    # the client's own encoding is kept for the query-string parser
    assert parser.decode_query("q=a%2526b%253Dc") == "q=a%26b%3Dc"
    assert parser.decode_query("-") == ""
    assert parser.decode("Mozilla/5.0%20(X11)") == "Mozilla/5.0 (X11)"
    # an HTML entity inside a user agent survives
    assert parser.decode("Foo&%2343;Bar") == "Foo&#43;Bar"


def test_status_000_and_forwarded_for_list():
    rec = record(status=0)
    rec["x-forwarded-for"] = "203.0.113.9,%20198.51.100.7"
    records, stats = parse_text(log_text([rec]))
    assert stats.rejected_total == 0
    assert as_dict(records[0])["status"] == 0


def test_malformed_lines_are_counted_and_the_file_goes_on():
    good = log_text([record(path="/1"), record(path="/2")])
    lines = good.splitlines(keepends=True)
    bad_count = "2025-02-16\t10:00:02\tFRA56\n"
    bad_date = lines[2].replace("2025-02-16", "2025-02-30")
    bad_time = lines[2].replace("10:00:01", "25:61:00")
    bad_status = lines[2].replace("\t200\t", "\tabc\t")
    text = "".join(lines[:3]) + bad_count + bad_date + bad_time + bad_status + lines[3]
    records, stats = parse_text(text)
    assert [as_dict(r)["path"] for r in records] == ["/1", "/2"]
    assert stats.lines == 6
    assert stats.rejected == {
        "3 fields, header has 33": 1,
        "bad date/time": 2,
        "bad status": 1,
    }
    # rejected lines are sampled for the log without their IP addresses
    samples = " ".join(s for kept in stats.samples.values() for s in kept)
    assert "192.0.2.10" not in samples and "<ip>" in samples


def test_truncated_last_line_of_33_field_file():
    text = log_text([record(path="/1"), record(path="/2")])
    text = text[: len(text) - 60]  # cut the last record mid-line
    records, stats = parse_text(text)
    assert len(records) == 1
    assert stats.rejected_total == 1


def test_fields_header_changing_mid_file():
    old = log_text([record(path="/old")], count=26)
    new = log_text([record(path="/new")], count=33)
    records, stats = parse_text(old + new)
    assert [as_dict(r)["path"] for r in records] == ["/old", "/new"]
    assert [as_dict(r)["content_type"] for r in records] == ["-", "text/html"]
    assert stats.rejected_total == 0


@pytest.mark.parametrize("memory", ["1024", "1769", "3538"])
def test_gunzip_thread_only_with_a_second_vcpu(monkeypatch, memory):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)
    parser.second_cpu.cache_clear()
    try:
        assert parser.second_cpu() is (memory == "3538")
        data = log_bytes([record(path=f"/p{i}") for i in range(3000)], gz=True)
        records = list(parser.parse(parser.open_lines(io.BytesIO(data)), parser.Stats()))
        assert [as_dict(r)["path"] for r in records] == [f"/p{i}" for i in range(3000)]
    finally:
        parser.second_cpu.cache_clear()


def test_gzip_detected_by_content_not_name():
    data = log_bytes([record()], gz=True)
    stats = parser.Stats()
    assert len(list(parser.parse(parser.open_lines(io.BytesIO(data)), stats))) == 1
    # concatenated gzip members are one file
    two = data + gzip.compress(b"")
    assert len(list(parser.parse(parser.open_lines(io.BytesIO(two)), parser.Stats()))) == 1


def test_file_with_no_data_lines():
    records, stats = parse_text(log_text([]))
    assert records == [] and stats.lines == 0


def _corrupt_middle() -> bytes:
    data = bytearray(gzip.compress(log_text([record(path=f"/p{i}") for i in range(200)]).encode()))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty object"),
        (b"<html>not a log</html>\n", "no #Version/#Fields header"),
        (b"#Version: 1.0\n2025-02-16\t10:00:00\n", "data before any #Fields line"),
        (b"#Fields: foo bar\n", "lacks"),
        (gzip.compress(b"#Version: 1.0\n" * 1000)[:-20], "truncated gzip"),
        (b"\x1f\x8bnot really gzip", "gzip"),
        (_corrupt_middle(), "corrupt gzip"),
    ],
)
def test_not_a_log_file(data, reason):
    with pytest.raises(parser.NotALogFile, match=reason):
        list(parser.parse(parser.open_lines(io.BytesIO(data)), parser.Stats()))


def test_encode_helper_matches_cloudfront_style():
    assert encode("a b", double=True) == "a%2520b"


@pytest.mark.parametrize(
    ("method", "status", "content_type", "path", "kind"),
    [
        ("GET", 200, "text/html; charset=utf-8", "/", PAGE),
        ("GET", 304, "-", "/about", PAGE),
        ("GET", 200, "-", "/blog/post.html", PAGE),
        ("GET", 200, "-", "/index.php", PAGE),
        ("GET", 200, "application/xhtml+xml", "/x", PAGE),
        ("GET", 200, "text/css", "/", ASSET),  # content type wins over the path
        ("GET", 200, "-", "/app.js", ASSET),
        ("GET", 206, "-", "/video.mp4", ASSET),
        ("HEAD", 200, "text/html", "/", ASSET),
        ("GET", 301, "text/html", "/old", OTHER),
        ("GET", 404, "text/html", "/missing", OTHER),
        ("GET", 0, "-", "/", OTHER),
        ("POST", 200, "text/html", "/form", OTHER),
    ],
)
def test_classification(method, status, content_type, path, kind):
    assert kind_of(method, status, content_type, path) == kind
