"""Session stitching: keep `sessions` and `visitors` equal to a batch sessionization
of the human page views, by recomputing only around what ingest marked dirty.

A session is a run of one visitor's human page views, ordered by (ts, request_id,
file_id), in which no gap reaches the timeout. Ingest queues (visitor, first_ts,
last_ts) in dirty_visitors, in the same transaction as the page views it adds or
deletes. One stitch batch is one SQL statement, so it sees one snapshot, commits
as a whole, and a run killed mid-way leaves its batch queued to be redone. Per
dirty visitor it

1. claims every queued entry of that visitor (row locks, SKIP LOCKED); a visitor
   with an entry locked by another stitcher is left to that stitcher, so two
   stitchers never rewrite the same visitor at once;
2. widens the queued range [first_ts, last_ts] to the stored sessions it overlaps
   or touches within the timeout; outside that range nothing can have changed, and
   its edges are gaps of at least the timeout;
3. sessionizes the page views in the widened range with window functions and
   writes the result in place of the sessions found in step 2;
4. recomputes the visitor's row from its sessions and deletes the claimed entries.

A last statement flips can_grow on sessions the newest page view moved past.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import timedelta

import psycopg

DEFAULT_BATCH_SIZE = 20_000

# What a session takes from its first page view.
ENTRY_COLUMNS = (
    "host",
    "landing_page",
    "referrer_host",
    "referrer_category",
    "referrer_source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "device_type",
    "browser",
    "os",
    "country_code",
)
# Everything a recomputation may change, besides the key.
CHANGING_COLUMNS = (
    "ended_at",
    "duration",
    "page_views",
    *ENTRY_COLUMNS,
    "exit_page",
    "can_grow",
)
SESSION_COLUMNS = ("session_id", "visitor_id", "started_at", *CHANGING_COLUMNS)


def _list(template: str, columns: tuple[str, ...], sep: str = ", ") -> str:
    return sep.join(template.format(c) for c in columns)


# Page views of one visitor in order; request_id in byte order, independent of the
# database's collation.
_ORDER = 'ts, request_id COLLATE "C", file_id'

_BATCH = f"""
WITH picked AS (
    SELECT visitor_id FROM dirty_visitors ORDER BY id LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
), candidates AS (
    SELECT DISTINCT visitor_id FROM picked
), locked AS (
    SELECT id, visitor_id, first_ts, last_ts FROM dirty_visitors
    WHERE visitor_id IN (SELECT visitor_id FROM candidates)
    FOR UPDATE SKIP LOCKED
), queued AS (
    SELECT visitor_id, count(*) AS entries FROM dirty_visitors
    WHERE visitor_id IN (SELECT visitor_id FROM candidates)
    GROUP BY visitor_id
), claimed AS (
    -- Only visitors all of whose entries this statement holds: an entry that is
    -- visible but could not be locked belongs to a stitcher busy with the visitor.
    SELECT l.visitor_id, min(l.first_ts) AS first_ts, max(l.last_ts) AS last_ts
    FROM locked l JOIN queued q USING (visitor_id)
    GROUP BY l.visitor_id, q.entries
    HAVING count(*) = q.entries
), old AS (
    -- Stored sessions that overlap or touch [first_ts, last_ts] within the timeout.
    -- Sessions never overlap, so those starting before the last one that starts
    -- at or before first_ts all end at least a timeout before it.
    SELECT s.session_id, s.visitor_id, s.started_at, s.ended_at
    FROM claimed c
    CROSS JOIN LATERAL (
        SELECT coalesce(max(started_at), '-infinity') AS since FROM sessions
        WHERE visitor_id = c.visitor_id AND started_at <= c.first_ts
    ) AS before
    JOIN sessions s ON s.visitor_id = c.visitor_id
        AND s.started_at >= before.since AND s.started_at < c.last_ts + %(timeout)s
    WHERE s.ended_at > c.first_ts - %(timeout)s
), bounds AS (
    -- The range to recompute: its edges are gaps of at least the timeout.
    SELECT c.visitor_id, least(c.first_ts, min(o.started_at)) AS lo,
           greatest(c.last_ts, max(o.ended_at)) AS hi
    FROM claimed c LEFT JOIN old o USING (visitor_id)
    GROUP BY c.visitor_id, c.first_ts, c.last_ts
), views AS (
    SELECT p.visitor_id, p.ts, p.request_id, p.file_id, p.host, p.path AS landing_page,
           p.path AS exit_page, {_list("p.{}", ENTRY_COLUMNS[2:])},
           coalesce(p.ts - lag(p.ts) OVER w >= %(timeout)s, true) AS first,
           coalesce(lead(p.ts) OVER w - p.ts >= %(timeout)s, true) AS last
    FROM bounds b
    JOIN page_views p ON p.visitor_id = b.visitor_id AND p.ts BETWEEN b.lo AND b.hi
    WHERE NOT p.is_bot
    WINDOW w AS (PARTITION BY p.visitor_id ORDER BY {_ORDER})
), numbered AS (
    SELECT v.*, count(*) FILTER (WHERE v.first)
               OVER (PARTITION BY v.visitor_id ORDER BY {_ORDER} ROWS UNBOUNDED PRECEDING)
               AS number
    FROM views v
), fresh AS (
    SELECT visitor_id, min(ts) AS started_at, max(ts) AS ended_at,
           max(ts) - min(ts) AS duration, count(*)::integer AS page_views,
           {_list("max({0}) FILTER (WHERE first) AS {0}", ENTRY_COLUMNS)},
           max(exit_page) FILTER (WHERE last) AS exit_page
    FROM numbered GROUP BY visitor_id, number
), newest AS (
    SELECT max(last_ts) AS ts FROM log_files
), computed AS (
    SELECT md5(f.visitor_id::text || '/' ||
               (extract(epoch FROM f.started_at) * 1000000)::bigint::text)::uuid AS session_id,
           f.*, coalesce(f.ended_at > newest.ts - %(timeout)s, false) AS can_grow
    FROM fresh f, newest
), written AS (
    INSERT INTO sessions AS s ({_list("{}", SESSION_COLUMNS)})
    SELECT {_list("{}", SESSION_COLUMNS)} FROM computed
    ON CONFLICT (session_id) DO UPDATE SET {_list("{0} = excluded.{0}", CHANGING_COLUMNS)}
    WHERE ({_list("s.{}", CHANGING_COLUMNS)})
          IS DISTINCT FROM ({_list("excluded.{}", CHANGING_COLUMNS)})
    RETURNING 1
), removed AS (
    DELETE FROM sessions s USING old o
    WHERE s.session_id = o.session_id
      AND o.session_id NOT IN (SELECT session_id FROM computed)
    RETURNING 1
), totals AS (
    -- The visitor's sessions as this statement leaves them.
    SELECT visitor_id, min(started_at) AS first_seen, max(ended_at) AS last_seen,
           count(*)::integer AS sessions, sum(page_views)::integer AS page_views
    FROM (
        SELECT s.visitor_id, s.started_at, s.ended_at, s.page_views FROM sessions s
        WHERE s.visitor_id IN (SELECT visitor_id FROM claimed)
          AND s.session_id NOT IN (SELECT session_id FROM old)
        UNION ALL
        SELECT visitor_id, started_at, ended_at, page_views FROM fresh
    ) AS kept
    GROUP BY visitor_id
), visitors_written AS (
    INSERT INTO visitors AS v (visitor_id, first_seen, last_seen, sessions, page_views)
    SELECT * FROM totals
    ON CONFLICT (visitor_id) DO UPDATE SET
        first_seen = excluded.first_seen, last_seen = excluded.last_seen,
        sessions = excluded.sessions, page_views = excluded.page_views
    WHERE (v.first_seen, v.last_seen, v.sessions, v.page_views)
          IS DISTINCT FROM (excluded.first_seen, excluded.last_seen, excluded.sessions,
                            excluded.page_views)
    RETURNING 1
), visitors_removed AS (
    DELETE FROM visitors
    WHERE visitor_id IN (SELECT visitor_id FROM claimed)
      AND visitor_id NOT IN (SELECT visitor_id FROM totals)
    RETURNING 1
), done AS (
    DELETE FROM dirty_visitors
    WHERE id IN (SELECT id FROM locked WHERE visitor_id IN (SELECT visitor_id FROM claimed))
    RETURNING 1
)
SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM claimed),
       (SELECT count(*) FROM views), (SELECT count(*) FROM written),
       (SELECT count(*) FROM removed)
"""

# Sessions the newest page view has moved past, or (after a reload dropped the
# newest page views) no longer past. Rows a running batch holds are skipped: that
# batch writes them with its own view of the newest page view.
_CAN_GROW = """
WITH newest AS (
    SELECT max(last_ts) - %(timeout)s AS horizon FROM log_files
), flipped AS (
    SELECT s.session_id FROM sessions s, newest
    WHERE (s.can_grow AND s.ended_at <= newest.horizon)
       OR (NOT s.can_grow AND s.ended_at > newest.horizon)
       OR (s.can_grow AND newest.horizon IS NULL)
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE sessions s SET can_grow = NOT s.can_grow FROM flipped
WHERE s.session_id = flipped.session_id
"""


@dataclass
class BatchResult:
    picked: int  # queue entries looked at
    visitors: int  # visitors stitched
    page_views: int  # page views read
    sessions_written: int  # sessions inserted or changed
    sessions_removed: int  # sessions merged away or left without page views


@dataclass
class StitchResult:
    visitors: int = 0
    page_views: int = 0
    sessions_written: int = 0
    sessions_removed: int = 0
    sessions_closed: int = 0  # can_grow flipped by the newest page view
    batches: int = 0
    backlog: int = 0  # visitors still queued
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def stitch_batch(
    conn: psycopg.Connection, timeout_minutes: int = 30, batch_size: int = DEFAULT_BATCH_SIZE
) -> BatchResult:
    """Stitch the visitors of the next batch_size queue entries that no other
    stitcher holds, in one statement. Outside a transaction it commits on its own;
    inside one, rolling back undoes it and leaves the entries queued."""
    with conn.transaction():
        row = conn.execute(
            _BATCH, {"batch_size": batch_size, "timeout": timedelta(minutes=timeout_minutes)}
        ).fetchone()
    return BatchResult(*row)


def update_can_grow(conn: psycopg.Connection, timeout_minutes: int = 30) -> int:
    """Bring can_grow up to date with the newest page view; returns sessions flipped."""
    with conn.transaction():
        cursor = conn.execute(_CAN_GROW, {"timeout": timedelta(minutes=timeout_minutes)})
    return cursor.rowcount


def backlog(conn: psycopg.Connection) -> int:
    """Visitors waiting to be stitched."""
    with conn.transaction():
        return conn.execute("SELECT count(DISTINCT visitor_id) FROM dirty_visitors").fetchone()[0]


def stitch(
    conn: psycopg.Connection,
    timeout_minutes: int = 30,
    batch_size: int = DEFAULT_BATCH_SIZE,
    time_budget_s: float | None = None,
) -> StitchResult:
    """Stitch queued visitors batch by batch until the queue is empty, only visitors
    another stitcher holds are left, or the next batch might not end within
    time_budget_s (measured from the call). Safe to run concurrently and to kill."""
    started = time.perf_counter()
    result = StitchResult()
    slowest = 0.0
    while True:
        elapsed = time.perf_counter() - started
        if time_budget_s is not None and elapsed + 1.5 * slowest > time_budget_s:
            break
        batch = stitch_batch(conn, timeout_minutes, batch_size)
        slowest = max(slowest, time.perf_counter() - started - elapsed)
        result.batches += 1
        result.visitors += batch.visitors
        result.page_views += batch.page_views
        result.sessions_written += batch.sessions_written
        result.sessions_removed += batch.sessions_removed
        if batch.visitors == 0 or batch.picked < batch_size:
            break
    result.sessions_closed = update_can_grow(conn, timeout_minutes)
    result.backlog = backlog(conn)
    result.seconds = round(time.perf_counter() - started, 3)
    return result
