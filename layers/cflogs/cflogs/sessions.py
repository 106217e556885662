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

Batches take the queued visitors in visitor id order, sweeping from the visitor
of the oldest entry up and then from the lowest id, so that each batch reads and
writes one stretch of the (visitor-ordered) indexes instead of all of them. A
last statement flips can_grow on sessions the newest page view moved past.
Before each batch, tables whose statistics a large load made stale are analysed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import timedelta

import psycopg

from .dashboard import rollups

DEFAULT_BATCH_SIZE = 50_000
FIRST_VISITOR, LAST_VISITOR = -(2**63), 2**63 - 1  # visitor ids are any bigint

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
SESSION_COLUMNS = (
    "session_id",
    "visitor_id",
    "started_at",
    "ended_at",
    "duration",
    "page_views",
    *ENTRY_COLUMNS,
    "exit_page",
    "can_grow",
)


def _list(template: str, columns: tuple[str, ...]) -> str:
    return ", ".join(template.format(c) for c in columns)


# Page views of one visitor in order; request_id in byte order, independent of the
# database's collation.
_ORDER = 'ts, request_id COLLATE "C", file_id'

# The CTEs views, edges and fresh (see sessionize).
_SESSIONIZE = f"""
views AS (
    -- Each page view, its place, and whether it starts or ends a session.
    SELECT p.visitor_id, p.ts, p.request_id, p.file_id, p.path AS exit_page,
           {_list("p.{}", ENTRY_COLUMNS).replace("p.landing_page", "p.path AS landing_page")},
           row_number() OVER w AS number,
           coalesce(p.ts - lag(p.ts) OVER w >= %(timeout)s, true) AS first,
           coalesce(lead(p.ts) OVER w - p.ts >= %(timeout)s, true) AS last
    FROM {{source}}
    WHERE NOT p.is_bot
    WINDOW w AS (PARTITION BY p.visitor_id ORDER BY {_ORDER})
), edges AS (
    -- First and last page views only: each session's last one follows its first.
    SELECT v.*, lead(ts) OVER e AS next_ts, lead(number) OVER e AS next_number,
           lead(exit_page) OVER e AS next_exit_page
    FROM views v WHERE first OR last
    WINDOW e AS (PARTITION BY visitor_id ORDER BY {_ORDER})
), fresh AS (
    SELECT visitor_id, ts AS started_at,
           CASE WHEN last THEN ts ELSE next_ts END AS ended_at,
           CASE WHEN last THEN 1 ELSE next_number - number + 1 END::integer AS page_views,
           {_list("{}", ENTRY_COLUMNS)},
           CASE WHEN last THEN exit_page ELSE next_exit_page END AS exit_page
    FROM edges WHERE first
)"""


def sessionize(source: str) -> str:
    """The CTEs views, edges and fresh (one row per session) over the human page
    views that the FROM item `source` yields as p; %(timeout)s is the timeout.
    The batch statement's, and the benchmark's sessionization of everything in
    one query."""
    return _SESSIONIZE.replace("{source}", source)


# A batch's page views: its visitors' in their widened ranges (bounds sorted by
# visitor, so that only ties need sorting).
_BATCH_PAGE_VIEWS = """(SELECT * FROM bounds ORDER BY visitor_id) AS b
    JOIN page_views p ON p.visitor_id = b.visitor_id AND p.ts BETWEEN b.lo AND b.hi"""

# Per-visitor lookups are LATERAL aggregates, which the planner cannot flatten, so
# they stay index probes whatever it estimates for the CTEs. They are equalities
# on visitor_id (sessions_visitor, page_views_visitor_ts), estimated at a few rows
# however large the tables: the statement's estimated cost stays far below
# jit_above_cost, whose compilation would cost more than a batch.
_BATCH = f"""
WITH picked AS (
    SELECT visitor_id FROM dirty_visitors
    WHERE visitor_id BETWEEN %(first_visitor)s AND %(last_visitor)s
    ORDER BY visitor_id LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
), entries AS (
    -- Every queued entry of the picked visitors, and whether this statement holds it.
    SELECT d.ctid AS entry, d.visitor_id, d.first_ts, d.last_ts, mine.entry IS NOT NULL AS mine
    FROM dirty_visitors d
    LEFT JOIN LATERAL (
        SELECT x.ctid AS entry FROM dirty_visitors x WHERE x.ctid = d.ctid
        FOR UPDATE SKIP LOCKED
    ) AS mine ON true
    -- Picked in visitor order: the visitors from the first to the last picked one
    -- are the picked ones and those all of whose entries others hold. (A range,
    -- not = ANY(picked): a sequential scan tests each row against the whole array.)
    WHERE d.visitor_id BETWEEN %(first_visitor)s AND (SELECT max(visitor_id) FROM picked)
), claimed AS (
    -- Only visitors all of whose entries this statement holds: an entry that is
    -- visible but could not be locked belongs to a stitcher busy with the visitor.
    SELECT visitor_id, min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM entries GROUP BY visitor_id
    HAVING bool_and(mine)
), bounds AS (
    -- Per visitor, its stored sessions in one probe: those that overlap or touch
    -- [first_ts, last_ts] within the timeout are replaced; the widened range
    -- [lo, hi] around them has gaps of at least the timeout at both edges, so
    -- nothing outside it changes, and the other sessions are kept as they are.
    SELECT c.visitor_id, least(c.first_ts, s.old_start) AS lo,
           greatest(c.last_ts, s.old_end) AS hi, s.*
    FROM claimed c
    CROSS JOIN LATERAL (
        SELECT count(*) AS stored,
               array_agg(session_id) FILTER (WHERE old) AS old_ids,
               min(started_at) FILTER (WHERE old) AS old_start,
               max(ended_at) FILTER (WHERE old) AS old_end,
               count(*) FILTER (WHERE NOT old) AS kept_sessions,
               sum(page_views) FILTER (WHERE NOT old) AS kept_page_views,
               min(started_at) FILTER (WHERE NOT old) AS kept_first,
               max(ended_at) FILTER (WHERE NOT old) AS kept_last
        FROM (
            SELECT session_id, started_at, ended_at, page_views,
                   ended_at > c.first_ts - %(timeout)s
                   AND started_at < c.last_ts + %(timeout)s AS old
            FROM sessions WHERE visitor_id = c.visitor_id
        ) AS stored
    ) AS s
), {sessionize(_BATCH_PAGE_VIEWS)}, removed AS (
    DELETE FROM sessions WHERE session_id = ANY(ARRAY(SELECT unnest(old_ids) FROM bounds))
    RETURNING 1
), inserted AS (
    -- The scalar subquery on removed runs first, so old rows are gone before
    -- sessions with the same id come back.
    INSERT INTO sessions ({_list("{}", SESSION_COLUMNS)})
    SELECT session_id_for(f.visitor_id, f.started_at), f.visitor_id, f.started_at, f.ended_at,
           f.ended_at - f.started_at, f.page_views, {_list("f.{}", ENTRY_COLUMNS)}, f.exit_page,
           coalesce(f.ended_at > newest.ts - %(timeout)s, false)
    FROM fresh f, (SELECT max(last_ts) AS ts FROM log_files) AS newest
    WHERE (SELECT count(*) FROM removed) >= 0
    RETURNING 1
), totals AS (
    -- Each visitor's sessions as this statement leaves them: the kept and the fresh.
    SELECT b.visitor_id, b.stored,
           least(b.kept_first, f.first_seen) AS first_seen,
           greatest(b.kept_last, f.last_seen) AS last_seen,
           (b.kept_sessions + coalesce(f.sessions, 0))::integer AS sessions,
           (coalesce(b.kept_page_views, 0) + coalesce(f.page_views, 0))::integer AS page_views
    FROM bounds b
    LEFT JOIN (
        SELECT visitor_id, min(started_at) AS first_seen, max(ended_at) AS last_seen,
               count(*) AS sessions, sum(page_views) AS page_views
        FROM fresh GROUP BY visitor_id
    ) AS f USING (visitor_id)
), visitors_written AS (
    INSERT INTO visitors AS v (visitor_id, first_seen, last_seen, sessions, page_views)
    SELECT visitor_id, first_seen, last_seen, sessions, page_views FROM totals
    WHERE sessions > 0
    ON CONFLICT (visitor_id) DO UPDATE SET
        first_seen = excluded.first_seen, last_seen = excluded.last_seen,
        sessions = excluded.sessions, page_views = excluded.page_views
    RETURNING 1
), visitors_removed AS (
    DELETE FROM visitors
    WHERE visitor_id = ANY(ARRAY(SELECT visitor_id FROM totals WHERE sessions = 0 AND stored > 0))
    RETURNING 1
), done AS (
    -- The entries of claimed visitors this statement sees are the ones it locked.
    DELETE FROM dirty_visitors
    WHERE ctid = ANY(ARRAY(SELECT entry FROM entries JOIN claimed USING (visitor_id)))
    RETURNING 1
)
SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM claimed),
       (SELECT coalesce(sum(page_views), 0) FROM fresh), (SELECT count(*) FROM inserted),
       (SELECT count(*) FROM removed), (SELECT max(visitor_id) FROM picked)
"""

# Sessions whose can_grow is wrong for the horizon (the newest page view minus the
# timeout): open ones it has moved past, and closed ones it no longer passes after
# a reload dropped the newest page views. Only a visitor's last session can end
# after the horizon (the one before it ends at least a timeout before its start),
# so visitors last seen after it lead to every session to reopen. Rows a running
# batch holds are skipped: it writes them with its own view of the newest page view.
_CAN_GROW = """
WITH candidates AS (
    SELECT session_id FROM sessions WHERE can_grow AND ended_at <= %(horizon)s
    UNION ALL
    SELECT last.session_id
    FROM visitors v
    CROSS JOIN LATERAL (
        SELECT session_id, can_grow, ended_at FROM sessions
        WHERE session_id BETWEEN session_id_for(v.visitor_id, 'epoch')
                             AND session_id_for(v.visitor_id, 'infinity')
        ORDER BY session_id DESC LIMIT 1
    ) AS last
    WHERE v.last_seen > %(horizon)s AND NOT last.can_grow AND last.ended_at > %(horizon)s
), flipped AS (
    SELECT session_id FROM sessions
    WHERE session_id = ANY(ARRAY(SELECT session_id FROM candidates))
      AND can_grow = (ended_at <= %(horizon)s)
    FOR UPDATE SKIP LOCKED
)
UPDATE sessions SET can_grow = NOT can_grow
WHERE session_id = ANY(ARRAY(SELECT session_id FROM flipped))
"""


@dataclass
class BatchResult:
    picked: int  # queue entries looked at
    visitors: int  # visitors stitched
    page_views: int  # page views read
    sessions_written: int  # sessions inserted or changed
    sessions_removed: int  # sessions merged away or left without page views
    last_visitor: int | None  # the highest visitor id picked


@dataclass
class StitchResult:
    visitors: int = 0
    page_views: int = 0
    sessions_written: int = 0
    sessions_removed: int = 0
    sessions_closed: int = 0  # can_grow flipped by the newest page view
    batches: int = 0
    backlog: int = 0  # visitors still queued
    backlog_age_s: float = 0.0  # how long the oldest of them has waited
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def stitch_batch(
    conn: psycopg.Connection,
    timeout_minutes: int = 30,
    batch_size: int = DEFAULT_BATCH_SIZE,
    visitors: tuple[int, int] = (FIRST_VISITOR, LAST_VISITOR),
) -> BatchResult:
    """Stitch the visitors of the first batch_size queue entries, in visitor order
    from visitors[0] up to visitors[1], that no other stitcher holds, in one
    statement. Outside a transaction it commits on its own; inside one, rolling
    back undoes it and leaves the entries queued."""
    with conn.transaction():
        row = conn.execute(
            _BATCH,
            {
                "batch_size": batch_size,
                "timeout": timedelta(minutes=timeout_minutes),
                "first_visitor": visitors[0],
                "last_visitor": visitors[1],
            },
        ).fetchone()
    return BatchResult(*row)


def update_can_grow(conn: psycopg.Connection, timeout_minutes: int = 30) -> int:
    """Bring can_grow up to date with the newest page view; returns sessions flipped.
    The horizon goes in as a value, so that the planner estimates from statistics."""
    with conn.transaction():
        newest = conn.execute("SELECT max(last_ts) FROM log_files").fetchone()[0]
        if newest is None:
            return 0
        horizon = newest - timedelta(minutes=timeout_minutes)
        return conn.execute(_CAN_GROW, {"horizon": horizon}).rowcount


def backlog(conn: psycopg.Connection) -> int:
    """Visitors waiting to be stitched."""
    return backlog_and_age(conn)[0]


def backlog_and_age(conn: psycopg.Connection) -> tuple[int, float]:
    """Visitors waiting to be stitched, and the seconds the oldest entry has waited."""
    with conn.transaction():
        count, age = conn.execute(
            "SELECT count(DISTINCT visitor_id),"
            " coalesce(extract(epoch FROM now() - min(queued_at)), 0) FROM dirty_visitors"
        ).fetchone()
    return count, round(float(age), 3)


# Tables whose statistics the stitcher's plans depend on, and when to refresh
# them: after as many changes as rows they had when last analysed (autovacuum
# waits for a tenth, but only gets there after a minute or more, and a
# catch-up grows sessions from nothing to millions in one run).
_STALE = """
SELECT format('%%I.%%I', s.schemaname, s.relname)
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE (c.oid IN ('sessions'::regclass, 'visitors'::regclass, 'dirty_visitors'::regclass)
       OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'page_views'::regclass))
  AND s.n_mod_since_analyze >= greatest(%(changes)s, c.reltuples)
ORDER BY 1
"""
ANALYZE_AFTER_CHANGES = 50_000


def analyze_stale(conn: psycopg.Connection) -> list[str]:
    """ANALYZE the page_views partitions, sessions, visitors and the queue where
    the rows changed since their last ANALYZE outnumber those then counted (and
    at least ANALYZE_AFTER_CHANGES), so that plans follow a large load at once;
    returns the tables analysed. Tables another session is vacuuming or
    analysing are skipped (autovacuum is on them already)."""
    with conn.transaction():
        stale = [
            row[0] for row in conn.execute(_STALE, {"changes": ANALYZE_AFTER_CHANGES}).fetchall()
        ]
        if stale:
            conn.execute(f"ANALYZE (SKIP_LOCKED) {', '.join(stale)}")
    return stale


def _sweeps(conn: psycopg.Connection) -> list[tuple[int, int]]:
    """Visitor id ranges to go through, in this order: from the visitor of the
    oldest queue entry up, then from the lowest id to there. Batches in visitor
    order read and write the indexes of page_views, sessions and visitors in
    order, one stretch after the other, instead of all over them each batch (the
    page views themselves lie in time order); starting at the oldest entry
    serves every visitor within a sweep."""
    with conn.transaction():
        row = conn.execute("SELECT visitor_id FROM dirty_visitors ORDER BY id LIMIT 1").fetchone()
    if row is None:
        return []
    return [(row[0], LAST_VISITOR), (FIRST_VISITOR, row[0] - 1)]


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
    analyze_stale(conn)
    sweeps = _sweeps(conn)
    while sweeps:
        if result.batches:
            analyze_stale(conn)
        elapsed = time.perf_counter() - started
        if time_budget_s is not None and elapsed + 1.5 * slowest > time_budget_s:
            break
        first, last = sweeps[0]
        batch = stitch_batch(conn, timeout_minutes, batch_size, (first, last))
        slowest = max(slowest, time.perf_counter() - started - elapsed)
        result.batches += 1
        result.visitors += batch.visitors
        result.page_views += batch.page_views
        result.sessions_written += batch.sessions_written
        result.sessions_removed += batch.sessions_removed
        if batch.picked < batch_size or batch.last_visitor == last:
            sweeps.pop(0)
        else:
            sweeps[0] = (batch.last_visitor + 1, last)
    result.sessions_closed = update_can_grow(conn, timeout_minutes)
    rollups.after_stitch(conn)  # the dashboard's session rollups and visitor sketches
    result.backlog, result.backlog_age_s = backlog_and_age(conn)
    result.seconds = round(time.perf_counter() - started, 3)
    return result
