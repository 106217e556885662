"""Fuzzing the whole load: real lines of every layout, mutated as an attacker or a
broken disk would (byte flips, control characters raw and percent-encoded, every
percent-encoding corner, huge numbers, tabs escaped and not), through parse,
enrich, visitor ids and COPY into the real PostgreSQL. No exception escapes, no
object fails, every good line is loaded into the right columns.

The default run is bounded and repeatable; `make fuzz` runs many more examples
with a fresh random seed (CFLOGS_FUZZ_EXAMPLES, CFLOGS_FUZZ_RANDOM)."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cflogs import db, ingest
from cflogs.config import Settings
from tests.logfiles import CHROME, GOOGLEBOT, IPHONE, encode, fields_for, record

EXAMPLES = int(os.environ.get("CFLOGS_FUZZ_EXAMPLES", "120"))
RANDOM = os.environ.get("CFLOGS_FUZZ_RANDOM", "") == "1"
LAYOUTS = (12, 15, 18, 19, 23, 24, 26, 33, 39)
KEY_NAME = "E2EXAMPLE.2025-02-16-10.fuzz{}.gz"
GOOD_LINES = 6

PERCENT_CORNERS = [
    "%", "%2", "%G0", "%25", "%252", "%2525", "%25%25", "%%", "%00", "%2500", "%252500",
    "%0A", "%0D", "%09", "%250A", "%7F", "%C0%80", "%ED%A0%80", "%F4%90%80%80", "%FF%FE",
    "%E2%80%A8", "%E2%80%AE", "%EF%BB%BF", "%C2%85", "&%2343;", "%u0000", "%25u0000",
]  # fmt: skip
HOSTILE = [
    "\x00", "\x01", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u202e", "\ufeff",
    "\t", "\\", "\\t", "\\n", "\\x00", "'", '"', "<script>", "${jndi:x}", "-", "", " ", "  ",
    "9" * 25, str(2**63), str(2**64), "-1", "1e39", "1e309", "nan", "inf", "-0", "0x10",
    "000", "999", "1000", "²", "١٢٣", "9999-12-31", "0001-01-01", "1970-01-01", "24:00:00",
    "23:59:60", "253402300800", "-62135596800", "::", "::ffff:192.0.2.1", "a" * 9000,
    "Mozilla/5.0 (Linux; Android 10;  )", "http://[::1", "https://x:99999/", "//", "?",
]  # fmt: skip
AGENTS = [CHROME, IPHONE, GOOGLEBOT, "curl/8.0", "-"]


@pytest.fixture(scope="module")
def loader(database_url):
    """A connection and a pipeline shared by every example, as a warm Lambda has."""
    folder = Path(tempfile.mkdtemp(prefix="cflogs-fuzz-"))
    settings = Settings(
        database_url=database_url,
        visitor_id_secret="fuzz-visitor-id-key-0123456789abcdef",
        data_dir=folder,
    )
    figures = {"objects": 0, "lines": 0, "failed": 0}
    with db.connect(settings) as conn:
        yield conn, ingest.Pipeline(settings), folder, figures
    print(
        f"\nfuzz: {figures['objects']} objects, {figures['lines']} lines tried, "
        f"{figures['failed']} objects failed"
    )


def good_record(i: int, layout: int) -> dict:
    values = record(
        ts=f"2025-02-16 10:{i:02d}:00",
        path=f"/good/{i}",
        ip=f"192.0.2.{i + 1}",
        query=f"utm_source=good{i}",
        referrer="https://www.google.com/search?q=good",
    )
    values["x-edge-request-id"] = f"good-{layout}-{i}"
    return values


def text_value() -> st.SearchStrategy[str]:
    pieces = st.sampled_from(PERCENT_CORNERS + HOSTILE) | st.text(max_size=12)
    return st.lists(pieces, min_size=1, max_size=4).map("".join)


@st.composite
def mutated_line(draw, fields: list[str]) -> bytes:
    """One line of the layout with some of its values replaced, or its bytes flipped."""
    values = record(
        ts="2025-02-16 10:30:00",
        path=draw(st.sampled_from(["/", "/a.html", "/img.png", "/x/y"])),
        ua=draw(st.sampled_from(AGENTS)),
        status=draw(st.sampled_from([200, 304, 404, 0])),
    )
    values["x-edge-request-id"] = "bad-" + draw(st.text("abcdef0123456789", min_size=4))
    for name in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=4)):
        value = draw(text_value())
        if name in ("cs(User-Agent)", "cs(Referer)", "cs-uri-query") and draw(st.booleans()):
            value = encode(value, double=draw(st.booleans()))
        values[name] = value
    line = "\t".join(values.get(name, "-") for name in fields).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # flip a few bytes anywhere, newline and tab included
        data = bytearray(line)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= draw(st.integers(1, 255))
        line = bytes(data)
    return line


@st.composite
def log_object(draw) -> tuple[int, bytes, int]:
    layout = draw(st.sampled_from(LAYOUTS))
    fields = fields_for(layout)
    good = [
        "\t".join(good_record(i, layout).get(name, "-") for name in fields).encode()
        for i in range(GOOD_LINES)
    ]
    bad = draw(st.lists(mutated_line(fields), min_size=1, max_size=8))
    lines = good + bad
    order = draw(st.permutations(range(len(lines))))
    header = f"#Version: 1.0\n#Fields: {' '.join(fields)}\n".encode()
    body = header + b"".join(lines[i] + b"\n" for i in order)
    if draw(st.booleans()):
        body = gzip.compress(body, mtime=0)
    return layout, body, len(lines)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(log_object())
def test_no_line_fails_an_object_and_good_lines_land_where_they_belong(loader, case):
    conn, pipeline, folder, figures = loader
    layout, body, line_count = case
    path = folder / KEY_NAME.format(figures["objects"])
    path.write_bytes(body)
    figures["objects"] += 1
    figures["lines"] += line_count
    try:
        result = ingest.ingest(conn, ingest.local_source(path), pipeline)
    except Exception:
        figures["failed"] += 1
        raise
    if result.status != "done":
        figures["failed"] += 1
    assert result.status == "done", result.reason

    file_id = conn.execute("SELECT file_id FROM log_files WHERE key = %s", (str(path),)).fetchone()[
        0
    ]
    good = conn.execute(
        """SELECT request_id, host, path, status, bytes, edge_location, utm_source,
                  referrer_category, is_bot
           FROM page_views WHERE file_id = %s AND path LIKE '/good/%%'
           ORDER BY path""",
        (file_id,),
    ).fetchall()
    expected = sorted(
        (
            f"good-{layout}-{i}" if layout >= 15 else "",  # x-edge-request-id came in 15
            "www.example.com" if layout >= 18 else "d111111abcdef8.cloudfront.net",
            f"/good/{i}",
            200,
            1234,
            "FRA56-P1",
            f"good{i}",
            "search",
            False,
        )
        for i in range(GOOD_LINES)
    )
    assert good == expected

    rows = conn.execute("SELECT * FROM page_views WHERE file_id = %s", (file_id,)).fetchall()
    for row in rows:
        for value in row:
            assert not isinstance(value, str) or value.isprintable(), row
    requests, printable = conn.execute(
        "SELECT sum(requests), bool_and(host || edge ~ '^[[:print:]]*$') FROM file_traffic"
        " WHERE file_id = %s",
        (file_id,),
    ).fetchone()
    assert requests == result.lines - result.rejected and printable
    conn.execute("DELETE FROM page_views WHERE file_id = %s", (file_id,))
    conn.commit()
