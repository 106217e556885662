"""`make bench-dashboard`: the dashboard's latency at scale. Synthetic page views
(10 million by default, over a year), sessions and hourly traffic are inserted
with generate_series, the rollups computed in SQL (dashboard_rebuild), then every
view is timed for ranges from one day to all time, unfiltered (rollups) and with
one filter (page views and sessions of the range).

    python -m cflogs.dashboard.bench [--page-views N] [--days D] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date, timedelta

import psycopg

from .. import db, ingest
from . import queries, render, rollups

END = date(2025, 12, 31)
PATHS = 2000
POOL_SHARE = 0.25  # distinct visitors over the year, as a share of page views / 3

# Lists to pick from: ARRAY[...][1 + floor(random() * n)], skewed with power().
COUNTRIES = [
    ("US", "United States"), ("DE", "Germany"), ("GB", "United Kingdom"), ("IN", "India"),
    ("FR", "France"), ("BR", "Brazil"), ("CA", "Canada"), ("NL", "Netherlands"),
    ("JP", "Japan"), ("AU", "Australia"), ("ES", "Spain"), ("IT", "Italy"), ("PL", "Poland"),
    ("SE", "Sweden"), ("MX", "Mexico"), ("KR", "South Korea"), ("CH", "Switzerland"),
    ("AT", "Austria"), ("BE", "Belgium"), ("IE", "Ireland"),
]  # fmt: skip
BROWSERS = ["Chrome", "Safari", "Mobile Safari", "Firefox", "Edge", "Samsung Internet", "Opera"]
SYSTEMS = ["Windows", "Mac OS X", "iOS", "Android", "Linux", "Chrome OS"]
SOURCES = [
    ("search", "Google"), ("search", "Bing"), ("social", "LinkedIn"), ("social", "Reddit"),
    ("referral", "news.example.org"), ("email", "Newsletter"), ("ai", "ChatGPT"),
]  # fmt: skip
EDGES = [f"{code}{n}-P{p}" for code in ("IAD", "FRA", "LHR", "NRT", "SFO") for n in (50, 56) for p in (1, 2)]  # fmt: skip  # noqa: E501


def _array(values) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values, skew: float = 2.0) -> str:
    """One of `values`, the first ones more often (power-law by skew)."""
    return f"({_array(values)})[1 + floor(power(random(), {skew}) * {len(values)})::int]"


def load(conn: psycopg.Connection, page_views: int, days: int) -> dict:
    """Fill an empty, migrated database; returns the seconds each step took."""
    seconds = {}
    first = END - timedelta(days=days - 1)
    months = {(first + timedelta(d)).strftime("%Y-%m") for d in range(days)}
    ingest.ensure_partitions(conn, months)
    span = days * 86400
    pool = max(int(page_views / 3 * POOL_SHARE), 1)
    started = time.perf_counter()
    codes = [c for c, _ in COUNTRIES]
    with conn.transaction():
        # Every third page view continues the visitor of the one before (a visit of
        # three); visitors come back from a pool, so a year has fewer distinct ones.
        conn.execute(
            f"""
            INSERT INTO page_views (file_id, request_id, ts, visitor_id, is_bot, bot_name, host,
                path, status, bytes, time_taken, edge_location, device_type, browser,
                browser_version, os, os_version, country_code, country, region, city,
                referrer_host, referrer_category, referrer_source, search_terms)
            SELECT g / 5000, 'r' || g,
                   %(first)s::timestamptz + (g::float8 * %(span)s / %(n)s) * interval '1 second',
                   hashint8extended((g / 3) %% %(pool)s, 0), bot,
                   CASE WHEN bot THEN 'Googlebot' END,
                   CASE WHEN g %% 10 = 0 THEN 'docs.example.com' ELSE 'www.example.com' END,
                   '/page/' || floor(power(random(), 3) * {PATHS})::int,
                   CASE WHEN random() < 0.93 THEN 200 ELSE 304 END,
                   (2000 + random() * 60000)::bigint, random() * 0.4,
                   {_pick(EDGES)}, {_pick(["desktop", "mobile", "tablet"])}, b,
                   (80 + floor(random() * 50)::int)::text || '.0', o,
                   (10 + floor(random() * 8)::int)::text, c,
                   ({_array([n for _, n in COUNTRIES])})[array_position({_array(codes)}, c)],
                   'Region ' || floor(random() * 8)::int, 'City ' || floor(random() * 25)::int,
                   CASE WHEN s <= 7 THEN 'ref' || s || '.example' END,
                   CASE WHEN s <= 7 THEN ({_array([c for c, _ in SOURCES])})[s] END,
                   CASE WHEN s <= 7 THEN ({_array([n for _, n in SOURCES])})[s] END,
                   CASE WHEN s <= 2 AND random() < 0.3
                        THEN 'term ' || floor(random() * 300)::int END
            FROM generate_series(0, %(n)s - 1) AS g,
                 LATERAL (SELECT random() < 0.1 AS bot, {_pick(BROWSERS)} AS b,
                                 {_pick(SYSTEMS)} AS o, {_pick(codes)} AS c,
                                 1 + floor(random() * 14)::int AS s
                          WHERE g >= 0) AS r
            """,
            {"first": first, "span": span, "n": page_views, "pool": pool},
        )
    seconds["page views"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("ALTER TABLE sessions DISABLE TRIGGER USER")  # rebuilt below at once
        conn.execute(
            f"""
            INSERT INTO sessions (session_id, visitor_id, started_at, ended_at, duration,
                page_views, host, landing_page, exit_page, referrer_host, referrer_category,
                referrer_source, utm_source, utm_medium, utm_campaign, device_type, browser, os,
                country_code, can_grow)
            SELECT gen_random_uuid(), hashint8extended(g %% %(pool)s, 0), t, t + d, d, n,
                   CASE WHEN g %% 10 = 0 THEN 'docs.example.com' ELSE 'www.example.com' END,
                   '/page/' || floor(power(random(), 3) * {PATHS})::int,
                   '/page/' || floor(power(random(), 3) * {PATHS})::int,
                   CASE WHEN s <= 7 THEN 'ref' || s || '.example' END,
                   CASE WHEN s <= 7 THEN ({_array([c for c, _ in SOURCES])})[s] ELSE 'direct' END,
                   CASE WHEN s <= 7 THEN ({_array([n for _, n in SOURCES])})[s] END,
                   CASE WHEN s = 6 THEN 'newsletter' END, CASE WHEN s = 6 THEN 'email' END,
                   CASE WHEN s = 6 THEN 'issue-' || floor(random() * 20)::int END,
                   {_pick(["desktop", "mobile", "tablet"])}, {_pick(BROWSERS)}, {_pick(SYSTEMS)},
                   {_pick(codes)}, false
            FROM generate_series(0, %(sessions)s - 1) AS g,
                 LATERAL (SELECT %(first)s::timestamptz
                                 + (g::float8 * %(span)s / %(sessions)s) * interval '1 second' AS t,
                                 1 + floor(power(random(), 2) * 8)::int AS n,
                                 random() * interval '600 seconds' AS d,
                                 1 + floor(random() * 14)::int AS s
                          WHERE g >= 0) AS r
            """,
            {"first": first, "span": span, "sessions": page_views * 9 // 30, "pool": pool},
        )
        conn.execute("ALTER TABLE sessions ENABLE TRIGGER USER")
        conn.execute(
            f"""
            INSERT INTO traffic_hourly
            SELECT h, host, edge, status_class, kind, r, r * 20000, (r * 0.8)::bigint
            FROM generate_series(%(first)s::timestamptz, %(first)s::timestamptz
                                 + %(days)s * interval '1 day' - interval '1 hour',
                                 interval '1 hour') AS h,
                 unnest(ARRAY['www.example.com', 'docs.example.com']) AS host,
                 unnest({_array(EDGES)}) AS edge,
                 unnest(ARRAY['2xx', '3xx', '4xx']) AS status_class,
                 unnest(ARRAY['page', 'asset']) AS kind,
                 LATERAL (SELECT (1 + random() * 40)::bigint AS r WHERE h IS NOT NULL) AS x
            """,
            {"first": first, "days": days},
        )
    seconds["sessions and traffic"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    rollups.rebuild(conn, shares=False)
    seconds["rollups"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    seconds["vacuum analyze"] = round(time.perf_counter() - started, 1)
    return seconds


def time_views(conn: psycopg.Connection, query: queries.Query, repeat: int) -> dict:
    """Median milliseconds of each view (its queries and the HTML), and their max."""
    hosts = queries.hosts(conn)
    data = queries.data_range(conn)
    found = {}
    for name in queries.VIEWS:
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            render.page(queries.view(conn, name, query), hosts, data)
            runs.append((time.perf_counter() - started) * 1000)
        found[name] = round(statistics.median(runs))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page-views", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with (
        db.throwaway_server() as server,
        db.scratch_database(server, "cflogs_bench") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        db.migrate(conn)
        print(f"loading {args.page_views:,} page views over {args.days} days ...", flush=True)
        loaded = load(conn, args.page_views, args.days)
        sizes = dict(
            conn.execute(
                """SELECT relname, n_live_tup FROM pg_stat_user_tables
                   WHERE relname IN ('daily_page_views', 'daily_sessions', 'visitor_days',
                                     'traffic_hourly', 'sessions')"""
            ).fetchall()
        )
        stored = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT is_bot), count(*) FROM page_views"
        ).fetchone()
        print(json.dumps({"seconds": loaded, "rows": sizes}), flush=True)
        results = {}
        for label, days in (("1 day", 1), ("7 days", 7), ("30 days", 30), ("90 days", 90),
                            ("all time", args.days)):  # fmt: skip
            query = queries.Query(END - timedelta(days=days - 1), END)
            results[label] = time_views(conn, query, args.repeat)
            filtered = queries.Query(query.since, END, filters=(("country", "DE"),))
            if days <= 30:
                results[label + ", country filter"] = time_views(conn, filtered, 1)
            print(label, json.dumps(results[label]), flush=True)
    print(f"\n{stored[1]:,} page views ({stored[0]:,} human); milliseconds per view "
          "(queries + HTML), median:")  # fmt: skip
    names = list(queries.VIEWS)
    print(f"{'range':<26}" + "".join(f"{n:>11}" for n in names) + f"{'max':>8}")
    for label, row in results.items():
        print(f"{label:<26}" + "".join(f"{row[n]:>11}" for n in names) + f"{max(row.values()):>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
