"""Stitch benchmark: `python -m cflogs.bench_stitch [--page-views N] [--batch-size N]`.

Loads synthetic page views with COPY into a database of its own (created on the
DATABASE_URL server, or the embedded one, and dropped at the end), queues every
visitor as ingest would (one entry per file and visitor), and times

1. a full stitch catch-up of everything, against a one-shot SQL sessionization of
   the same page views for scale;
2. one stitch after a further 10,000-line file, the steady state.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from . import db, ingest, sessions
from .config import Settings

START = datetime(2025, 3, 3, tzinfo=UTC)
DAYS = 7
FILES_PER_HOUR = 4
COLUMNS = (
    "file_id",
    "request_id",
    "ts",
    "visitor_id",
    "is_bot",
    "host",
    "path",
    "status",
    "device_type",
    "browser",
    "os",
    "country_code",
    "referrer_host",
    "referrer_category",
)
PATHS = [f"/docs/page-{n}" for n in range(200)] + ["/", "/pricing", "/blog"]
REFERRERS = [(None, "direct")] * 6 + [("www.google.com", "search"), ("t.co", "social")]
BOT_SHARE = 0.1
NEW_FILE_ID = 10**9


def file_of(ts: datetime, visitor_id: int) -> int:
    """Hourly files, several an hour; a visitor's requests go to one of them (the
    edge server it reaches), so a session spans as many files as hours."""
    hour = int((ts - START).total_seconds() // 3600)
    return hour * FILES_PER_HOUR + visitor_id % FILES_PER_HOUR + 1


def visitor_rows(visitor_id: int, rng: random.Random, end: datetime, late_hours: float = DAYS * 24):
    """A visitor's page views: sessions at random times before `end`, a few minutes
    between page views inside a session (now and then a gap past the timeout)."""
    device = rng.choice([("desktop", "Chrome", "Windows"), ("mobile", "Safari", "iOS")])
    country = rng.choice(["DE", "FR", "US", "JP", None])
    for _ in range(1 + int(rng.expovariate(1 / 1.5))):
        ts = end - timedelta(hours=rng.uniform(0, late_hours))
        referrer = rng.choice(REFERRERS)
        for _ in range(1 + int(rng.expovariate(1 / 3.4))):
            if ts >= end:
                break
            yield (ts, visitor_id, False, device, country, referrer)
            ts += timedelta(seconds=int(rng.expovariate(1 / 100)) + 1)


def copy_rows(
    conn: psycopg.Connection, rows, rng: random.Random, file_id: int | None = None
) -> tuple[int, dict[int, datetime]]:
    """COPY page views in (into hourly files, or all into file_id); returns the
    count and each file's newest page view."""
    newest: dict[int, datetime] = {}
    count = 0
    columns = ", ".join(COLUMNS)
    with conn.cursor().copy(f"COPY page_views ({columns}) FROM STDIN") as copy:
        for ts, visitor_id, is_bot, device, country, referrer in rows:
            file = file_id or file_of(ts, visitor_id)
            if ts > newest.get(file, START):
                newest[file] = ts
            copy.write_row(
                (
                    file,
                    uuid.UUID(int=rng.getrandbits(128)).hex,
                    ts,
                    visitor_id,
                    is_bot,
                    "www.example.com",
                    rng.choice(PATHS),
                    200,
                    "bot" if is_bot else device[0],
                    "Googlebot" if is_bot else device[1],
                    device[2],
                    country,
                    *referrer,
                )
            )
            count += 1
    return count, newest


def record_files(conn: psycopg.Connection, newest: dict[int, datetime]) -> None:
    """Ledger rows and dirty entries, as ingest leaves them for these files."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO log_files (bucket, key, status, last_ts) OVERRIDING SYSTEM VALUE
               VALUES ('bench', %s, 'done', %s)
               ON CONFLICT (bucket, key) DO UPDATE SET last_ts = excluded.last_ts""",
            [(f"file-{file_id}", ts) for file_id, ts in newest.items()],
        )
    conn.execute(
        """INSERT INTO dirty_visitors (visitor_id, first_ts, last_ts)
           SELECT visitor_id, min(ts), max(ts) FROM page_views
           WHERE file_id = ANY(%s) AND NOT is_bot GROUP BY file_id, visitor_id""",
        (list(newest),),
    )


def load(conn: psycopg.Connection, page_views: int, rng: random.Random) -> int:
    """page_views human page views (about 8 a visitor) plus a tenth as many bot ones."""
    end = START + timedelta(days=DAYS)

    def rows():
        made = 0
        visitor = 0
        while made < page_views:
            visitor += 1
            for row in visitor_rows(visitor, rng, end):
                if made >= page_views:
                    return
                yield row
                made += 1
                if rng.random() < BOT_SHARE:
                    yield (row[0], -visitor, True, *row[3:])

    ingest.ensure_partitions(conn, {"2025-03"})
    with conn.transaction():
        count, newest = copy_rows(conn, rows(), rng)
        record_files(conn, newest)
    conn.execute("VACUUM ANALYZE page_views")
    conn.execute("ANALYZE dirty_visitors")
    return count


def one_shot(conn: psycopg.Connection, timeout: timedelta) -> tuple[int, float]:
    """Sessions of all human page views in one query, for scale."""
    started = time.perf_counter()
    count = conn.execute(
        """SELECT count(*) FROM (
               SELECT visitor_id, ts - lag(ts) OVER (PARTITION BY visitor_id
                   ORDER BY ts, request_id COLLATE "C", file_id) >= %s AS new_session
               FROM page_views WHERE NOT is_bot) AS marked
           WHERE new_session IS NOT false""",
        (timeout,),
    ).fetchone()[0]
    return count, time.perf_counter() - started


def new_file(conn: psycopg.Connection, lines: int, rng: random.Random, known_visitors: int) -> int:
    """A 10,000-line file's page views from the last hour (every line a page view,
    to be safe): half from returning visitors, a few up to a day late."""
    end = START + timedelta(days=DAYS, hours=1)

    def rows():
        made = 0
        while made < lines:
            returning = rng.random() < 0.5
            visitor = rng.randrange(1, known_visitors) if returning else rng.getrandbits(40)
            late = 24 if rng.random() < 0.05 else 1
            for row in visitor_rows(visitor, rng, end, late_hours=late):
                yield row
                made += 1

    with conn.transaction():
        count, newest = copy_rows(conn, rows(), rng, file_id=NEW_FILE_ID)
        record_files(conn, newest)
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page-views", type=int, default=800_000)
    parser.add_argument("--batch-size", type=int, default=sessions.DEFAULT_BATCH_SIZE)
    parser.add_argument("--file-lines", type=int, default=10_000)
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    rng = random.Random(20250303)
    timeout = timedelta(minutes=settings.session_timeout_minutes)
    with (
        db.throwaway_server() as server,
        db.scratch_database(server, "cflogs_bench") as url,
        psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn,
    ):
        db.migrate(conn)
        started = time.perf_counter()
        loaded = load(conn, args.page_views, rng)
        queued = conn.execute(
            "SELECT count(*), count(DISTINCT visitor_id) FROM dirty_visitors"
        ).fetchone()
        print(
            f"loaded {loaded:,} page views ({args.page_views:,} human) in "
            f"{time.perf_counter() - started:.1f} s; queue: {queued[0]:,} entries, "
            f"{queued[1]:,} visitors"
        )
        count, seconds = one_shot(conn, timeout)
        print(f"one-shot SQL sessionization: {count:,} sessions in {seconds:.2f} s")

        result = sessions.stitch(conn, settings.session_timeout_minutes, batch_size=args.batch_size)
        rate = result.page_views / result.seconds
        print(
            f"catch-up: {result.visitors:,} visitors, {result.page_views:,} page views, "
            f"{result.sessions_written:,} sessions in {result.seconds:.2f} s "
            f"({result.batches} batches): {rate:,.0f} page views/s (target >= 150,000)"
        )
        conn.execute("VACUUM ANALYZE sessions, visitors, dirty_visitors")

        added = new_file(conn, args.file_lines, rng, queued[1])
        result = sessions.stitch(conn, settings.session_timeout_minutes, batch_size=args.batch_size)
        print(
            f"after a {args.file_lines:,}-line file ({added:,} page views): "
            f"{result.visitors:,} visitors, {result.page_views:,} page views re-read, "
            f"{result.sessions_written:,} sessions written, "
            f"{result.sessions_removed:,} merged in {result.seconds:.3f} s (target < 1 s)"
        )


if __name__ == "__main__":
    main()
