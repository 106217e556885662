"""Scale benchmark: `python -m cflogs.bench_scale [--sizes 1000000,3000000] [--file-lines N]`.

Does the work for one new log file stay the same however much history is stored?
For each size it makes a database of its own (on DATABASE_URL's server, or an
embedded one; dropped at the end) holding that many stored page views over
monthly partitions, written with SQL rather than through the parser (which would
take hours at 10 million): sessions of a few page views each, in time order,
spread over 13 months, from visitors of whom some come back often, each column
copied from the page views of a small generated log file, and one ledger row and
one queue entry per hourly file and visitor, as ingest leaves them. Then it

1. stitches the whole history (the catch-up rate, page views per second);
2. ingests one new generated file (some of whose visitors have history) and
   stitches it, median of --runs (each run takes the file out again first);
3. reports bytes stored (tables and indexes) per page view;
4. for scale, sessionizes everything again in one statement (the stitcher's own
   SQL over every page view at once, into a table with the indexes of sessions)
   and computes the dashboard's session rollups of those rows in another: what
   the catch-up does, without batches, a queue or rows to replace,

and compares 2. with the same file on an empty database, measured again right
after each size so that both see the machine in the same state.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from . import bench, db, generate, geodb, ingest, sessions
from .config import Settings

FILE_START = generate.DEFAULT_START  # the new file's first hour
HISTORY_END = datetime(FILE_START.year, FILE_START.month, FILE_START.day, tzinfo=UTC)
HISTORY_START = datetime(2024, 5, 2, tzinfo=UTC)  # 13 months, 14 partitions with the new one
FILES_PER_HOUR = 4
PAGE_VIEWS_PER_SESSION = 2.5  # mean, geometric
SESSIONS_PER_VISITOR = 2.5  # mean over the visitors (a few come back very often)
RETURNING_SESSIONS = 3  # history sessions of each visitor of the new file that has history
CHUNK = 1_000_000  # page views per INSERT, about
# Copied from templates: a session's first page view decides whether it is a bot's.
BOT_COLUMNS = ("is_bot", "bot_name")
OTHER_COLUMNS = tuple(
    c
    for c in ingest.PAGE_VIEW_COLUMNS
    if c not in ("file_id", "request_id", "ts", "visitor_id", *BOT_COLUMNS)
)


def months_between(start: datetime, end: datetime) -> list[str]:
    months, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = year + month // 12, month % 12 + 1
    return months


def load_history(
    conn: psycopg.Connection, page_views: int, template_file: Path, pipeline, returning: list[int]
) -> int:
    """About page_views stored page views (humans and bots) before the new file;
    returns how many."""
    ingest.ensure_partitions(conn, months_between(HISTORY_START, HISTORY_END))
    # Templates: the page views of a small generated file, without their keys.
    ingest.ingest(conn, ingest.local_source(template_file), pipeline)
    columns = ", ".join(OTHER_COLUMNS + BOT_COLUMNS)
    with conn.transaction():
        conn.execute(
            f"CREATE TEMP TABLE templates AS SELECT row_number() OVER () - 1 AS n, {columns}"
            " FROM page_views"
        )
        conn.execute("CREATE UNIQUE INDEX ON templates (n)")
        conn.execute("TRUNCATE page_views, log_files, dirty_visitors, file_traffic, traffic_hourly")
    templates = conn.execute("SELECT count(*) FROM templates").fetchone()[0]
    total_sessions = int(page_views / PAGE_VIEWS_PER_SESSION)
    span = (HISTORY_END - HISTORY_START).total_seconds()
    chunks = max(1, round(page_views / CHUNK))
    conn.execute("SELECT setseed(0.2025)")
    for chunk in range(chunks):
        # Each chunk is one stretch of time, written in time order, as files arrive.
        conn.execute(
            f"""
            INSERT INTO page_views (file_id, request_id, ts, visitor_id, {columns})
            SELECT floor(extract(epoch FROM v.ts - %(start)s) / 3600)::bigint * {FILES_PER_HOUR}
                       + abs(v.visitor_id) %% {FILES_PER_HOUR} + 1,
                   substr(md5(v.s::text || ':' || v.k) || md5(v.k || ':' || v.s), 1, 56),
                   v.ts, v.visitor_id, {", ".join(f"t.{c}" for c in OTHER_COLUMNS)},
                   b.is_bot, b.bot_name
            FROM (
                SELECT s.s, k.k, s.first_template, s.visitor_id,
                       least(s.started + k.k * interval '150 s' + random() * interval '60 s',
                             %(end)s - interval '1 s') AS ts
                FROM (
                    SELECT s, floor(random() * %(templates)s)::bigint AS first_template,
                           %(start)s + (%(chunk)s + random()) * %(chunk_span)s AS started,
                           CASE WHEN random() < %(returning_share)s
                                THEN (%(returning)s::bigint[])[1 + floor(random() * %(known)s)]
                                ELSE 1 + floor(%(visitors)s * random() ^ 2)::bigint
                           END AS visitor_id,
                           floor(ln(1 - random()) / ln(%(continue)s))::int AS more
                    FROM generate_series(1, %(sessions)s) AS s
                ) AS s
                CROSS JOIN LATERAL generate_series(0, s.more) AS k
            ) AS v
            JOIN templates b ON b.n = v.first_template
            JOIN templates t ON t.n = (v.first_template + v.k) %% %(templates)s
            ORDER BY v.ts
            """,
            {
                "start": HISTORY_START,
                "end": HISTORY_END,
                "chunk": chunk,
                "chunk_span": timedelta(seconds=span / chunks),
                "templates": templates,
                "sessions": total_sessions // chunks,
                "visitors": max(1, int(total_sessions / SESSIONS_PER_VISITOR)),
                "continue": 1 - 1 / PAGE_VIEWS_PER_SESSION,
                "returning": returning or [0],
                "known": len(returning) or 1,
                "returning_share": len(returning) * RETURNING_SESSIONS / total_sessions,
            },
        )
    with conn.transaction():
        # The ledger and the queue as ingest leaves them for these files.
        conn.execute(
            """INSERT INTO log_files (file_id, bucket, key, status, page_views, first_ts, last_ts,
                                      processed_at)
               OVERRIDING SYSTEM VALUE
               SELECT file_id, 'history', 'file-' || file_id, 'done', count(*), min(ts), max(ts),
                      now()
               FROM page_views GROUP BY file_id"""
        )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('log_files', 'file_id'), max(file_id))"
            " FROM log_files"
        )
        conn.execute(
            """INSERT INTO dirty_visitors (visitor_id, first_ts, last_ts)
               SELECT visitor_id, min(ts), max(ts) FROM page_views WHERE NOT is_bot
               GROUP BY file_id, visitor_id ORDER BY min(ts)"""
        )
    conn.execute("DROP TABLE templates")
    conn.execute("VACUUM ANALYZE")
    return conn.execute("SELECT count(*) FROM page_views").fetchone()[0]


@dataclass
class OneQuery:
    page_views: int
    sessionize_s: float
    rollups_s: float

    @property
    def rate(self) -> float:
        return self.page_views / self.sessionize_s

    @property
    def rate_with_rollups(self) -> float:
        return self.page_views / (self.sessionize_s + self.rollups_s)


def one_query(conn: psycopg.Connection, timeout: int) -> OneQuery:
    """Sessions of every human page view in one INSERT into a scratch copy of
    sessions (indexes, no triggers), and their daily session rollups in one more,
    as dashboard_rebuild computes them."""
    entry = ", ".join(sessions.ENTRY_COLUMNS)
    conn.execute("CREATE TEMP TABLE one_query_sessions (LIKE sessions INCLUDING INDEXES)")
    conn.execute("CREATE TEMP TABLE one_query_daily (LIKE daily_sessions INCLUDING INDEXES)")
    started = time.perf_counter()
    conn.execute(
        f"""INSERT INTO one_query_sessions ({", ".join(sessions.SESSION_COLUMNS)})
            WITH {sessions.sessionize("page_views p")}
            SELECT session_id_for(visitor_id, started_at), visitor_id, started_at, ended_at,
                   ended_at - started_at, page_views, {entry}, exit_page, false
            FROM fresh""",
        {"timeout": timedelta(minutes=timeout)},
    )
    sessionized = time.perf_counter()
    conn.execute(
        """INSERT INTO one_query_daily
           SELECT d.dimension, (s.started_at AT TIME ZONE 'UTC')::date, s.host, d.value,
                  count(*), count(*) FILTER (WHERE s.page_views = 1),
                  coalesce(sum(extract(epoch FROM s.duration)), 0), sum(s.page_views)
           FROM one_query_sessions s
           CROSS JOIN LATERAL session_dimensions(s.started_at, s.landing_page, s.exit_page,
               s.referrer_category, s.referrer_source, s.referrer_host, s.utm_source,
               s.utm_medium, s.utm_campaign, s.device_type, s.browser, s.os, s.country_code)
               AS d
           GROUP BY 1, 2, 3, 4"""
    )
    rolled_up = time.perf_counter()
    page_views = conn.execute("SELECT sum(page_views) FROM one_query_sessions").fetchone()[0]
    conn.execute("DROP TABLE one_query_sessions, one_query_daily")
    return OneQuery(page_views, sessionized - started, rolled_up - sessionized)


@dataclass
class FileRun:
    ingest_s: float
    stitch_s: float
    stitch_cpu_s: float  # the server's CPU seconds for the stitch
    page_views: int
    visitors: int


def new_file(conn: psycopg.Connection, path: Path, pipeline, timeout: int, runs: int) -> FileRun:
    """Ingest and stitch the file, median of runs; before a run, page views the
    file left are deleted and stitched away again (its ledger row stays)."""
    ingests, stitches, cpus = [], [], []
    key = ingest.local_source(path).key
    for _ in range(runs):
        if conn.execute("SELECT 1 FROM log_files WHERE key = %s", (key,)).fetchone():
            with conn.transaction():
                conn.execute(
                    """WITH old AS (DELETE FROM page_views p USING log_files f
                                    WHERE f.key = %s AND p.file_id = f.file_id
                                    RETURNING p.visitor_id, p.ts, p.is_bot)
                       INSERT INTO dirty_visitors (visitor_id, first_ts, last_ts)
                       SELECT visitor_id, min(ts), max(ts) FROM old WHERE NOT is_bot
                       GROUP BY visitor_id""",
                    (key,),
                )
            sessions.stitch(conn, timeout)
            settle(conn)
        bench.clear_caches(pipeline)
        loaded = ingest.ingest(conn, ingest.local_source(path), pipeline)
        cpu = backend_cpu(conn)
        result = sessions.stitch(conn, timeout)
        ingests.append(loaded.seconds)
        stitches.append(result.seconds)
        cpus.append(backend_cpu(conn) - cpu if cpu is not None else 0.0)
    return FileRun(
        statistics.median(ingests),
        statistics.median(stitches),
        statistics.median(cpus),
        result.page_views,
        result.visitors,
    )


def settle(conn: psycopg.Connection) -> None:
    """What the server does between two files on its own: autovacuum (done here
    when it is off, as on some shared test servers) and the stitcher's ANALYZE
    of tables that changed a lot (here after taking the file out again, so that
    the timed stitch does not pay for statistics the benchmark's reloads made
    stale)."""
    conn.execute("SELECT pg_stat_force_next_flush()")  # this connection's counts, now
    if conn.execute("SHOW autovacuum").fetchone()[0] == "off":
        conn.execute("VACUUM")
    sessions.analyze_stale(conn)


def backend_cpu(conn: psycopg.Connection) -> float | None:
    """CPU seconds the connection's server process has used, when the server runs
    on this machine (the steadier figure when other work shares the cores)."""
    try:
        with open(f"/proc/{conn.info.backend_pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_bytes(conn: psycopg.Connection) -> int:
    """Tables and their indexes (and TOAST) of the whole schema."""
    return conn.execute(
        """SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm')"""
    ).fetchone()[0]


def main(argv: list[str] | None = None) -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--sizes", default="1000000,3000000", help="stored page views, a list")
    options.add_argument("--file-lines", type=int, default=100_000)
    options.add_argument("--runs", type=int, default=3)
    args = options.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="cflogs-bench-") as folder:
        path = Path(folder) / f"{generate.DEFAULT_DISTRIBUTION}.2025-06-02-00.new.gz"
        generate.generate_file(path, lines=args.file_lines)
        template_file = Path(folder) / f"{generate.DEFAULT_DISTRIBUTION}.2025-01-06-00.tpl.gz"
        generate.generate_file(template_file, lines=20_000, seed=2, start=date(2025, 1, 6))
        settings = Settings(
            geoip_db_path=str(geodb.write(Path(folder) / "City.mmdb")),
            visitor_id_secret="bench-key-0123456789abcdef",
        )
        timeout = settings.session_timeout_minutes
        pipeline = ingest.Pipeline(settings)
        bench.parse_and_enrich(path.read_bytes(), pipeline)  # warm up, as a running process is

        rows = []
        with (
            db.throwaway_server() as server,
            db.scratch_database(server, "cflogs_bench") as empty_url,
            psycopg.connect(empty_url, autocommit=True, prepare_threshold=None) as empty_conn,
        ):
            db.migrate(empty_conn)
            ingest.ensure_partitions(empty_conn, months_between(HISTORY_END, HISTORY_END))
            empty = new_file(empty_conn, path, pipeline, timeout, args.runs)
            returning = [
                row[0]
                for row in empty_conn.execute(
                    "SELECT visitor_id FROM visitors ORDER BY visitor_id"
                ).fetchall()[::2]
            ]
            stored = empty_conn.execute("SELECT count(*) FROM page_views").fetchone()[0]
            print(
                f"new file: {args.file_lines:,} lines, {stored:,} page views, "
                f"{empty.visitors:,} visitors; empty database: ingest {empty.ingest_s:.2f} s, "
                f"stitch {empty.stitch_s:.2f} s ({empty.page_views:,} page views read)",
                flush=True,
            )
            for size in sizes:
                with (
                    db.scratch_database(server, "cflogs_bench") as url,
                    psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn,
                ):
                    db.migrate(conn)
                    started = time.perf_counter()
                    history = load_history(conn, size, template_file, pipeline, returning)
                    loaded_s = time.perf_counter() - started
                    cpu = backend_cpu(conn)
                    catch_up = sessions.stitch(conn, timeout)
                    if cpu is not None:
                        cpu = catch_up.page_views / (backend_cpu(conn) - cpu)
                    settle(conn)
                    run = new_file(conn, path, pipeline, timeout, args.runs)
                    stored = conn.execute("SELECT count(*) FROM page_views").fetchone()[0]
                    per_view = stored_bytes(conn) / stored
                    single = one_query(conn, timeout)  # last: it churns the caches
                # The same file on the empty database again, right after: the
                # machine's speed drifts (other work on it), so compare like with like.
                base = new_file(empty_conn, path, pipeline, timeout, args.runs)
                rows.append((history, catch_up, cpu, single, run, base, per_view))
                print(
                    f"{history:,} page views stored (written in {loaded_s:.0f} s); "
                    f"catch-up {catch_up.page_views / catch_up.seconds:,.0f} page views/s "
                    f"({catch_up.page_views:,} in {catch_up.seconds:.1f} s; per server CPU "
                    f"second {cpu or 0:,.0f}); in one query "
                    f"{single.rate:,.0f} page views/s ({single.sessionize_s:.1f} s), "
                    f"{single.rate_with_rollups:,.0f} with the session rollups "
                    f"(+{single.rollups_s:.1f} s); new file: ingest {run.ingest_s:.2f} s "
                    f"(empty: {base.ingest_s:.2f} s), stitch {run.stitch_s:.2f} s "
                    f"(empty: {base.stitch_s:.2f} s; {run.page_views:,} page views read); "
                    f"{per_view:,.0f} bytes/page view",
                    flush=True,
                )

    print()
    print(
        "| stored page views | catch-up, page views/s (per server CPU second) "
        "| one query, page views/s (with session rollups) "
        "| ingest new file (x empty) | stitch new file (x empty) "
        "| stitch, server CPU (x empty) | bytes/page view |"
    )
    print("|---|---|---|---|---|---|---|")
    for history, catch_up, cpu, single, run, base, per_view in rows:
        server_cpu = (
            f"{run.stitch_cpu_s:.2f} s ({run.stitch_cpu_s / base.stitch_cpu_s:.2f}x)"
            if base.stitch_cpu_s
            else "n/a"
        )
        print(
            f"| {history / 1e6:.1f}M | {catch_up.page_views / catch_up.seconds:,.0f} "
            f"({cpu or 0:,.0f}) "
            f"| {single.rate:,.0f} ({single.rate_with_rollups:,.0f}) "
            f"| {run.ingest_s:.2f} s ({run.ingest_s / base.ingest_s:.2f}x) "
            f"| {run.stitch_s:.2f} s ({run.stitch_s / base.stitch_s:.2f}x) "
            f"| {server_cpu} | {per_view:,.0f} |"
        )


if __name__ == "__main__":
    main()
