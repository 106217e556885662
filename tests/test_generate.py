"""The sample log generator: CloudFront's naming, layouts and encoding, determinism,
and a ground truth that equals what the real pipeline stores."""

from __future__ import annotations

import gzip
import ipaddress
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from random import Random

import pytest

from cflogs import generate, ingest, parser
from cflogs.generate import (
    CRAWLERS,
    GROUND_TRUTH_FILE,
    LAYOUTS,
    MONITOR,
    GroundTruth,
    generate_file,
    split_sessions,
)
from cflogs.useragent import columns as user_agent_columns

NAME = re.compile(r"^E2EXAMPLE8DEMO\.(\d{4}-\d{2}-\d{2}-\d{2})\.([a-z0-9]{8})\.gz$")
SMALL = {"days": 1, "visitors_per_hour": 25}


def log_files(outdir: Path) -> list[Path]:
    return sorted(p for p in outdir.iterdir() if p.name != GROUND_TRUTH_FILE)


def read_lines(path: Path) -> list[str]:
    with open(path, "rb") as stream:
        return [line.rstrip("\n") for line in parser.open_lines(stream)]


def records(path: Path) -> list[dict]:
    """The parsed records of a file, as {RECORD field: value}."""
    stats = parser.Stats()
    with open(path, "rb") as stream:
        rows = [dict(zip(parser.RECORD, record, strict=True))
                for record in parser.parse(parser.open_lines(stream), stats)]  # fmt: skip
    assert stats.rejected_total == 0, (path.name, dict(stats.rejected), stats.samples)
    return rows


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> tuple[Path, GroundTruth]:
    """One day at a modest rate in the default layout, shared by the read-only tests."""
    outdir = tmp_path_factory.mktemp("day")
    return outdir, generate.generate(outdir, seed=7, **SMALL)


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    first = generate.generate(tmp_path / "a", seed=3, **SMALL)
    again = generate.generate(tmp_path / "b", seed=3, **SMALL)
    other = generate.generate(tmp_path / "c", seed=4, **SMALL)

    def contents(outdir):
        return {p.name: p.read_bytes() for p in (tmp_path / outdir).iterdir()}

    assert contents("a") == contents("b")
    assert first == again
    assert set(contents("c")).isdisjoint(set(contents("a")) - {GROUND_TRUTH_FILE})
    assert other.lines != first.lines
    # Generating again into the same folder replaces the last run's files, no more.
    (tmp_path / "a" / "notes.txt").write_text("mine")
    assert generate.generate(tmp_path / "a", seed=4, **SMALL) == other
    assert contents("a") == {**contents("c"), "notes.txt": b"mine"}
    assert generate.load_ground_truth(tmp_path / "a") == other
    assert generate.load_ground_truth(tmp_path / "nothing") is None


def test_same_bytes_whatever_the_hash_seed_of_the_process(tmp_path):
    script = (
        "import sys; from cflogs.generate import generate; "
        "generate(sys.argv[1], days=1, visitors_per_hour=8)"
    )
    for hash_seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / hash_seed)], env=environment, check=True
        )
    first, second = ({p.name: p.read_bytes() for p in (tmp_path / h).iterdir()} for h in "12")
    assert first == second


def test_gzip_members_carry_no_time_or_name(day):
    outdir, _ = day
    head = log_files(outdir)[0].read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0  # no FNAME flag
    assert head[4:8] == b"\x00\x00\x00\x00"  # mtime 0


# ---------------------------------------------------------------- files as CloudFront writes them


def test_files_are_named_per_distribution_and_hour_and_hold_that_hour(day):
    outdir, truth = day
    files = log_files(outdir)
    assert len(files) == truth.files == len(truth.log_files)
    assert sorted(f.name for f in truth.log_files) == [p.name for p in files]
    hours = Counter()
    for path in files:
        match = NAME.match(path.name)
        assert match, path.name
        hour = match.group(1)
        hours[hour] += 1
        assert hour.startswith("2025-06-02-")
        for row in records(path):
            assert f"{row['date']}-{row['hour']}" == hour
    assert len(hours) == 24
    assert max(hours.values()) >= 2  # busy hours come in several files
    assert sum(f.lines for f in truth.log_files) == truth.lines


def test_records_are_not_in_time_order_and_some_arrive_hours_late(tmp_path):
    truth = generate.generate(tmp_path, days=2, visitors_per_hour=60, seed=2)
    late = [f for f in truth.log_files if f.late]
    assert late
    for log_file in late:
        hour_end = datetime.strptime(log_file.hour + "+0000", "%Y-%m-%d-%H%z").timestamp() + 3600
        delivered = datetime.fromisoformat(log_file.delivered_at).timestamp()
        assert hour_end + 3600 <= delivered <= hour_end + 6 * 3600
        assert (tmp_path / log_file.name).stat().st_mtime == delivered
    shuffled = 0
    for path in log_files(tmp_path):
        times = [row["time"] for row in records(path)]
        shuffled += times != sorted(times)
    assert shuffled > len(truth.log_files) / 2


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_has_its_header_and_parses_without_rejects(tmp_path, layout):
    truth = generate.generate(
        tmp_path, days=1, visitors_per_hour=4, layout=layout, gz=False, seed=5
    )
    fields = list(parser.V2_FIELDS) if layout == 39 else parser.LEGACY_FIELDS[:layout]
    lines = 0
    for path in log_files(tmp_path):
        assert not path.name.endswith(".gz")
        text = path.read_text()
        head, fields_line, *rows = text.split("\n")
        assert head == "#Version: 1.0"
        assert fields_line == "#Fields: " + " ".join(fields)
        assert rows[-1] == ""
        assert all(len(row.split("\t")) == layout for row in rows[:-1])
        lines += len(records(path))
    assert lines == truth.lines > 0
    assert truth.layout == layout


def test_old_layouts_put_the_site_host_in_cs_host(tmp_path):
    generate.generate(tmp_path / "old", days=1, visitors_per_hour=5, layout=15, seed=1)
    generate.generate(tmp_path / "new", days=1, visitors_per_hour=5, layout=18, seed=1)
    old = {row["host"] for p in log_files(tmp_path / "old") for row in records(p)}
    assert old == set(generate.DEFAULT_HOSTS)
    new_lines = [line for p in log_files(tmp_path / "new") for line in read_lines(p)[2:]]
    cs_host = {line.split("\t")[6] for line in new_lines}
    assert cs_host == {generate.CLOUDFRONT_HOST}


# ---------------------------------------------------------------- values


def test_encoding_is_cloudfronts(tmp_path):
    generate.generate(tmp_path / "now", days=1, visitors_per_hour=40, seed=9)
    generate.generate(tmp_path / "2016", days=1, visitors_per_hour=40, layout=24, seed=9)
    now = [line.split("\t") for p in log_files(tmp_path / "now") for line in read_lines(p)[2:]]
    agents = {row[10] for row in now}
    assert all(" " not in ua and "%2520" not in ua for ua in agents)
    assert any("%20" in ua for ua in agents)
    assert any("%5BFBAN" in ua for ua in agents)  # brackets of in-app browsers
    # The client's own %20 is escaped again in referrers and query strings.
    assert any("utm_campaign=" in row[11] and "%2520" in row[11] for row in now)
    assert any("search?q=" in row[9] and "%2520" in row[9] for row in now)
    assert all("%20" not in row[11].replace("%2520", "") for row in now)
    old = [line.split("\t") for p in log_files(tmp_path / "2016") for line in read_lines(p)[2:]]
    old_agents = {row[10] for row in old}
    assert all("%2520" in ua or "%" not in ua for ua in old_agents)
    assert {parser.decode(ua) for ua in old_agents} == {parser.decode(ua) for ua in agents}


def test_cloudfront_encode_escapes_what_cloudfront_escapes():
    encode = generate.cloudfront_encode
    assert encode("") == "-"
    assert encode("a b[c]~d") == "a%20b%5Bc%5D%7Ed"
    assert encode("<>\"#%{}|\\^`'") == "%3C%3E%22%23%25%7B%7D%7C%5C%5E%60%27"
    assert encode("/x?q=caf%C3%A9&y=é") == "/x?q=caf%25C3%25A9&y=%C3%A9"
    assert encode("Mozilla/5.0 (X11; Linux x86_64; rv:127.0)") == (
        "Mozilla/5.0%20(X11;%20Linux%20x86_64;%20rv:127.0)"
    )


def test_values_look_real_and_addresses_are_not_anyones(day):
    outdir, truth = day
    rows = [line.split("\t") for p in log_files(outdir) for line in read_lines(p)[2:]]
    private = ipaddress.ip_network("10.0.0.0/8")
    documentation = ipaddress.ip_network("2001:db8::/32")
    ips = {row[4] for row in rows}
    assert all(
        ipaddress.ip_address(ip) in (private if ":" not in ip else documentation) for ip in ips
    )
    assert any(":" in ip for ip in ips)
    assert len(ips) > 300
    assert all(re.fullmatch(r"[A-Z]{3}\d{1,2}-[CP]\d", row[2]) for row in rows)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{54}==", row[14]) for row in rows)
    assert len({row[14] for row in rows}) == len(rows)
    assert {row[13] for row in rows} >= {"Hit", "Miss", "RefreshHit", "Error"}
    statuses = Counter(row[8] for row in rows)
    assert statuses["200"] + statuses["304"] > 0.9 * len(rows)
    assert {"301", "404", "000"} <= set(statuses)
    assert any(status.startswith("5") for status in statuses)
    assert statuses == Counter(truth.status_counts)
    types = Counter(row[29] for row in rows if row[8] == "200")
    assert {"text/html", "text/css", "application/javascript", "font/woff2", "image/webp"} <= set(
        types
    )
    for row in rows:
        if row[29] in ("text/html", "text/html;charset=UTF-8") and row[8] == "200":
            assert "." not in row[7].rsplit("/", 1)[1] or row[7].endswith(".html")
        if row[29].startswith(("image/", "font/", "text/css")):
            assert "." in row[7].rsplit("/", 1)[1]
    assert all(float(row[18]) >= float(row[27]) for row in rows)


def test_referrers_cover_every_way_people_arrive(day):
    outdir, _ = day
    rows = [line.split("\t") for p in log_files(outdir) for line in read_lines(p)[2:]]
    landing = [parser.decode(row[9]) for row in rows if row[29].startswith("text/html")]
    text = "\n".join(landing)
    for source in (
        "https://www.google.",
        "https://www.bing.com/",
        "https://duckduckgo.com/",
        "facebook.com/",
        "https://t.co/",
        "reddit.com/r/",
        "news.ycombinator.com/item?id=",
        "https://chatgpt.com/",
        "perplexity.ai/",
        "mail.",
    ):
        assert source in text, source
    queries = "\n".join(parser.decode_query(row[11]) for row in rows)
    for parameter in ("utm_source=", "utm_medium=email", "utm_campaign=", "gclid=", "fbclid="):
        assert parameter in queries, parameter
    assert sum(not r for r in landing) > len(landing) / 10  # direct
    hosts = {f"https://{host}/" for host in generate.DEFAULT_HOSTS}
    assert any(r.startswith(tuple(hosts)) for r in landing)  # internal


def test_user_agents_are_diverse_and_bots_are_the_ones_the_pipeline_knows():
    rng = Random(1)
    devices = Counter()
    agents = set()
    for _ in range(3000):
        ua, device = generate._human_agent(rng)
        agents.add(ua)
        columns = user_agent_columns(ua)
        assert columns[0] is False, ua
        assert columns[2] == device, ua
        devices[device] += 1
    assert len(agents) > 500  # popular versions repeat, as in real traffic
    assert set(devices) == {"desktop", "mobile", "tablet"}
    families = {user_agent_columns(ua)[5] for ua in agents}
    assert {"Chrome", "Firefox", "Safari", "Edge", "Mobile Safari", "Chrome Mobile"} <= families
    for _, ua, _, _ in CRAWLERS:
        assert user_agent_columns(ua)[0] is True, ua
    assert user_agent_columns(MONITOR)[0] is True
    # scanners (curl, python-requests ...) only ever get 404s and HEADs, never a page view


def test_traffic_follows_the_week(tmp_path):
    truth = generate.generate(tmp_path, days=7, visitors_per_hour=15, seed=11)
    by_day = list(truth.human_page_views_by_day.values())
    assert len(by_day) == 7
    assert max(by_day[5:]) < min(by_day[:5])  # the weekend is quieter
    assert truth.start == "2025-06-02T00:00:00Z" and truth.end == "2025-06-09T00:00:00Z"
    days_seen: dict[tuple, set] = {}
    for path in log_files(tmp_path):
        for row in records(path):
            if (
                row["status"] == 200
                and row["content_type"].startswith("text/html")
                and "bot" not in row["user_agent"].lower()
            ):
                visitor = (row["host"], row["ip"], row["user_agent"])
                days_seen.setdefault(visitor, set()).add(row["date"])
    returning = sum(len(days) > 1 for days in days_seen.values())
    assert 0.05 < returning / len(days_seen) < 0.5  # some come back later in the week
    assert truth.sessions > truth.human_visitors


def test_start_days_and_arguments(tmp_path):
    truth = generate.generate(
        tmp_path,
        days=1,
        visitors_per_hour=3,
        start=date(2024, 12, 31),
        distribution_id="EABCDEF1234567",
        hosts=("shop.example.net",),
    )
    names = [p.name for p in log_files(tmp_path)]
    assert all(name.startswith("EABCDEF1234567.2024-12-31-") for name in names)
    assert truth.human_page_views_by_host.keys() == {"shop.example.net"}
    assert GroundTruth.from_json((tmp_path / GROUND_TRUTH_FILE).read_text()) == truth
    # Only the counting of sessions depends on the timeout, never the files.
    longer = generate.generate(
        tmp_path / "longer",
        days=1,
        visitors_per_hour=3,
        start=date(2024, 12, 31),
        distribution_id="EABCDEF1234567",
        hosts=("shop.example.net",),
        session_timeout_minutes=24 * 60,
    )
    assert longer.sessions == longer.human_visitors < truth.sessions
    assert longer.log_files == truth.log_files
    with pytest.raises(ValueError):
        generate.generate(tmp_path, layout=20)


# ---------------------------------------------------------------- sessions


def test_sessions_split_at_thirty_minutes_of_silence():
    assert split_sessions([]) == []
    assert split_sessions([100]) == [[100]]
    assert split_sessions([0, 1799]) == [[0, 1799]]
    assert split_sessions([0, 1800]) == [[0], [1800]]
    assert split_sessions([5000, 0, 60, 1859, 3659, 9000]) == [
        [0, 60, 1859],
        [3659, 5000],
        [9000],
    ]
    assert split_sessions([0, 10, 20], timeout=10) == [[0], [10], [20]]


# ---------------------------------------------------------------- the pipeline agrees


def ingest_all(conn, env, outdir: Path) -> list[ingest.FileResult]:
    pipeline = ingest.Pipeline(env)
    paths = log_files(outdir)
    results = [ingest.ingest(conn, ingest.local_source(p), pipeline) for p in paths]
    conn.commit()
    return results


@pytest.mark.parametrize("layout", [33, 12, 39])
def test_ground_truth_equals_what_the_pipeline_stores(conn, env, tmp_path, layout):
    truth = generate.generate(tmp_path, days=1, visitors_per_hour=20, layout=layout, seed=layout)
    results = ingest_all(conn, env, tmp_path)
    assert [r.status for r in results] == ["done"] * truth.files
    assert sum(r.rejected for r in results) == 0
    assert sum(r.lines for r in results) == truth.lines
    human, bots, visitors = conn.execute(
        """SELECT count(*) FILTER (WHERE NOT is_bot), count(*) FILTER (WHERE is_bot),
                  count(DISTINCT visitor_id) FILTER (WHERE NOT is_bot)
           FROM page_views"""
    ).fetchone()
    assert (human, bots, visitors) == (
        truth.human_page_views,
        truth.bot_page_views,
        truth.human_visitors,
    )
    assert human > 200 and bots > 50
    by_host = dict(
        conn.execute("SELECT host, count(*) FROM page_views WHERE NOT is_bot GROUP BY host")
    )
    assert by_host == truth.human_page_views_by_host
    top = conn.execute(
        """SELECT host, path, count(*) FROM page_views WHERE NOT is_bot
           GROUP BY host, path ORDER BY 3 DESC, 1, 2 LIMIT 10"""
    ).fetchall()
    assert [list(row) for row in top] == truth.top_pages
    # Sessions, the batch way docs/sessions.md defines them, over what the pipeline stored.
    sessions, singles, duration = conn.execute(
        """WITH flagged AS (
               SELECT visitor_id, ts,
                      coalesce(ts - lag(ts) OVER w >= interval '30 minutes', true) AS starts
               FROM page_views WHERE NOT is_bot
               WINDOW w AS (PARTITION BY visitor_id ORDER BY ts)),
           numbered AS (
               SELECT visitor_id, ts, sum(starts::int) OVER (PARTITION BY visitor_id ORDER BY ts
                   ROWS UNBOUNDED PRECEDING) AS n FROM flagged),
           sessions AS (
               SELECT visitor_id, n, count(*) AS views,
                      extract(epoch FROM max(ts) - min(ts)) AS seconds
               FROM numbered GROUP BY 1, 2)
           SELECT count(*), count(*) FILTER (WHERE views = 1),
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)
           FROM sessions"""
    ).fetchone()
    assert (sessions, singles, duration) == (
        truth.sessions,
        truth.single_page_sessions,
        truth.median_session_seconds,
    )
    assert truth.human_visitors < truth.sessions < truth.human_page_views


# ---------------------------------------------------------------- one big file


def test_generate_file_writes_exactly_n_lines_with_many_agents_and_addresses(tmp_path):
    path = tmp_path / "big.gz"
    truth = generate_file(path, lines=40_000, seed=2)
    rows = records(path)
    assert len(rows) == truth.lines == 40_000
    assert len({row["user_agent"] for row in rows}) > 1000
    assert len({row["ip"] for row in rows}) > 2000
    assert truth.human_page_views > 5_000 and truth.bot_page_views > 500
    again = tmp_path / "again.gz"
    generate_file(again, lines=40_000, seed=2)
    assert again.read_bytes() == path.read_bytes()
    plain = tmp_path / "plain.log"
    generate_file(plain, lines=1_000, seed=2, gz=False, layout=39)
    assert gzip.decompress(path.read_bytes()).startswith(b"#Version: 1.0\n#Fields: date time ")
    text = plain.read_text().split("\n")
    assert text[1].startswith("#Fields: timestamp DistributionId ") and len(text) == 1_003
