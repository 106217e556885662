"""Retention: drop whole months of page views, and what was derived from them.

Everything before the cutoff (the first day of the month `keep_months` before the
current one) goes in one transaction: the monthly page_views partitions (a DROP,
not a DELETE), the traffic rollups of those hours (traffic_hourly and each object's
share in file_traffic, so that the two still agree), and the sessions and visitors
built from those page views, so that after the next stitch run sessions and
visitors again equal a batch sessionization of the page views that remain:

- a session that ended before the cutoff had all its page views dropped: deleted,
  and its visitor recomputed from the sessions left (or deleted with none left);
- a session that started before the cutoff and ended after it loses its first page
  views: its visitor is queued in dirty_visitors, and the stitcher rebuilds it.

The ledger (log_files) is kept, so the backfill does not load the dropped objects
again; an object reloaded later (a reprocess) brings its page views back until the
next retention run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

# Dropping a partition locks page_views against every reader and writer; rather
# than queue behind a long load, give up and let the next run try again.
LOCK_TIMEOUT = "10s"


@dataclass
class RetentionResult:
    cutoff: str
    partitions: list[str]
    sessions_deleted: int = 0
    visitors_deleted: int = 0
    visitors_queued: int = 0
    traffic_rows_deleted: int = 0
    busy: bool = False  # page_views stayed locked by loads: nothing dropped, try again later

    def as_dict(self) -> dict:
        return asdict(self)


def cutoff(keep_months: int, today: date | None = None) -> date:
    """The first day kept: the current month and the keep_months before it stay."""
    if keep_months < 1:
        raise ValueError("keep_months must be at least 1")
    today = today or datetime.now(UTC).date()
    months = today.year * 12 + today.month - 1 - keep_months
    return date(months // 12, months % 12 + 1, 1)


_OLD_PARTITIONS = r"""
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'page_views'::regclass
  AND c.relname ~ '^page_views_\d{4}_\d{2}$' AND c.relname < %s
ORDER BY c.relname
"""

# Sessions first: the straddling ones queue their visitors, the old ones go, and
# the visitors that lost sessions are recomputed from what is left.
_SESSIONS = """
WITH queued AS (
    INSERT INTO dirty_visitors (visitor_id, first_ts, last_ts)
    SELECT visitor_id, started_at, ended_at FROM sessions
    WHERE started_at < %(cutoff)s AND ended_at >= %(cutoff)s
    RETURNING visitor_id
), gone AS (
    DELETE FROM sessions WHERE ended_at < %(cutoff)s RETURNING visitor_id
), left_over AS (
    SELECT g.visitor_id, s.first_seen, s.last_seen, s.sessions, s.page_views
    FROM (SELECT DISTINCT visitor_id FROM gone) AS g
    CROSS JOIN LATERAL (
        SELECT min(started_at) AS first_seen, max(ended_at) AS last_seen,
               count(*)::integer AS sessions, sum(page_views)::integer AS page_views
        FROM sessions
        WHERE session_id BETWEEN session_id_for(g.visitor_id, 'epoch')
                             AND session_id_for(g.visitor_id, 'infinity')
          AND ended_at >= %(cutoff)s
    ) AS s
), updated AS (
    UPDATE visitors v SET first_seen = l.first_seen, last_seen = l.last_seen,
                          sessions = l.sessions, page_views = l.page_views
    FROM left_over l WHERE v.visitor_id = l.visitor_id AND l.sessions > 0
    RETURNING 1
), removed AS (
    DELETE FROM visitors
    WHERE visitor_id = ANY(ARRAY(SELECT visitor_id FROM left_over WHERE sessions = 0))
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM removed),
       (SELECT count(DISTINCT visitor_id) FROM queued), (SELECT count(*) FROM updated)
"""


def apply(conn: psycopg.Connection, keep_months: int, today: date | None = None) -> RetentionResult:
    """Drop what is older than cutoff(keep_months, today). Cheap when there is
    nothing to drop (one catalog query), so it can run on every stitch."""
    first_kept = cutoff(keep_months, today)
    bound = f"page_views_{first_kept:%Y_%m}"
    result = RetentionResult(first_kept.isoformat(), [])
    with conn.transaction():
        old = [row[0] for row in conn.execute(_OLD_PARTITIONS, (bound,))]
    if not old:
        return result
    try:
        with conn.transaction():
            timeout = sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT))
            conn.execute(timeout)
            # Before anything else, so that no load or stitch runs half before, half after.
            conn.execute("LOCK TABLE page_views IN ACCESS EXCLUSIVE MODE")
            cut = datetime(first_kept.year, first_kept.month, 1, tzinfo=UTC)
            gone, removed, queued, _ = conn.execute(_SESSIONS, {"cutoff": cut}).fetchone()
            traffic = conn.execute("DELETE FROM traffic_hourly WHERE hour < %s", (cut,)).rowcount
            conn.execute("DELETE FROM file_traffic WHERE hour < %s", (cut,))
            for name in old:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    except psycopg.errors.LockNotAvailable:
        result.busy = True
        return result
    result.partitions = old
    result.sessions_deleted, result.visitors_deleted = gone, removed
    result.visitors_queued, result.traffic_rows_deleted = queued, traffic
    return result
