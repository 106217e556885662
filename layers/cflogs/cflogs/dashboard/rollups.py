"""The dashboard's daily rollups (migration 0009). Ingest calls replace_file once
per loaded object. Triggers on sessions note what every statement writing them
changed, and the stitcher calls after_stitch to add that to daily_sessions and to
remake the visitor sketches of long ranges."""

from __future__ import annotations

import psycopg

from ..parser import decode
from ..values import TEXT_LIMITS, clean_text

# The object's old share leaves, its new share (from its page views, just copied)
# comes in, and the difference is added to the rollup in key order (so concurrent
# loads lock rollup rows in the same order). Returns the keys left at zero.
_ADD = """
    label = coalesce(excluded.label, t.label), page_views = t.page_views + excluded.page_views,
    bytes = t.bytes + excluded.bytes, time_taken = t.time_taken + excluded.time_taken,
    timed = t.timed + excluded.timed"""
_PAGE_VIEWS = f"""
WITH old AS (
    DELETE FROM file_page_views WHERE file_id = %(file)s
    RETURNING dimension, day, host, value, label, -page_views AS page_views, -bytes AS bytes,
              -time_taken AS time_taken, -timed AS timed
), new AS (
    SELECT d.dimension, (p.ts AT TIME ZONE 'UTC')::date AS day, p.host, d.value,
           max(d.label) AS label, count(*) AS page_views, coalesce(sum(p.bytes), 0) AS bytes,
           coalesce(sum(p.time_taken), 0)::float8 AS time_taken, count(p.time_taken) AS timed
    FROM page_views p CROSS JOIN LATERAL page_view_dimensions(p) AS d
    WHERE p.file_id = %(file)s
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT 'not_found', day, host, path, NULL, sum(requests), 0, 0, 0
    FROM unnest(%(days)s::date[], %(hosts)s::text[], %(paths)s::text[], %(requests)s::bigint[])
         AS missing (day, host, path, requests)
    GROUP BY 2, 3, 4
), kept AS (
    INSERT INTO file_page_views SELECT %(file)s, * FROM new
), delta AS (
    SELECT dimension, day, host, value, max(label) AS label, sum(page_views) AS page_views,
           sum(bytes) AS bytes, sum(time_taken) AS time_taken, sum(timed) AS timed
    FROM (SELECT * FROM old UNION ALL SELECT * FROM new) AS changes
    GROUP BY 1, 2, 3, 4
    HAVING sum(page_views) <> 0 OR sum(bytes) <> 0 OR sum(timed) <> 0
), monthly AS (
    INSERT INTO monthly_page_views AS t
    SELECT dimension, date_trunc('month', day)::date, host, value, max(label), sum(page_views),
           sum(bytes), sum(time_taken), sum(timed)
    FROM delta GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (dimension, day, host, value) DO UPDATE SET {_ADD}
)
INSERT INTO daily_page_views AS t SELECT * FROM delta ORDER BY 1, 2, 3, 4
ON CONFLICT (dimension, day, host, value) DO UPDATE SET {_ADD}
RETURNING dimension, day, host, value, page_views
"""

_VISITOR_DAYS = """
WITH old AS (
    DELETE FROM file_visitor_days WHERE file_id = %(file)s
    RETURNING day, host, visitor_id, -page_views AS page_views
), new AS (
    SELECT (ts AT TIME ZONE 'UTC')::date AS day, host, visitor_id, count(*) AS page_views
    FROM page_views WHERE file_id = %(file)s AND NOT is_bot GROUP BY 1, 2, 3
), kept AS (
    INSERT INTO file_visitor_days SELECT %(file)s, * FROM new
), delta AS (
    SELECT day, host, visitor_id, sum(page_views) AS page_views
    FROM (SELECT * FROM old UNION ALL SELECT * FROM new) AS changes
    GROUP BY 1, 2, 3 HAVING sum(page_views) <> 0
)
INSERT INTO visitor_days AS t SELECT * FROM delta ORDER BY 1, 2, 3
ON CONFLICT (day, host, visitor_id) DO UPDATE SET page_views = t.page_views + excluded.page_views
RETURNING day, host, visitor_id, page_views
"""

_TRAFFIC = """
WITH old AS (
    DELETE FROM file_daily_traffic WHERE file_id = %(file)s
    RETURNING day, host, edge, status_class, kind, -requests AS requests, -bytes AS bytes,
              -hits AS hits
), new AS (
    SELECT (hour AT TIME ZONE 'UTC')::date AS day, host, edge, status_class, kind,
           sum(requests) AS requests, sum(bytes) AS bytes, sum(hits) AS hits
    FROM file_traffic WHERE file_id = %(file)s GROUP BY 1, 2, 3, 4, 5
), kept AS (
    INSERT INTO file_daily_traffic SELECT %(file)s, * FROM new
), delta AS (
    SELECT day, host, edge, status_class, kind, sum(requests) AS requests, sum(bytes) AS bytes,
           sum(hits) AS hits
    FROM (SELECT * FROM old UNION ALL SELECT * FROM new) AS changes
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(requests) <> 0 OR sum(bytes) <> 0 OR sum(hits) <> 0
)
INSERT INTO daily_traffic AS t SELECT * FROM delta ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (day, host, edge, status_class, kind) DO UPDATE SET
    requests = t.requests + excluded.requests, bytes = t.bytes + excluded.bytes,
    hits = t.hits + excluded.hits
RETURNING day, host, edge, status_class, kind, requests
"""


def replace_file(conn: psycopg.Connection, file_id: int, not_found: dict[tuple, int]) -> None:
    """Swap the object's share of the page view rollups, visitor_days and
    daily_traffic for what its page views and file_traffic rows hold now (in the
    caller's transaction, after they were copied).
    `not_found`: the object's requests answered 404, by (date, host, path) as
    logged; they are no page views, so ingest counts them as it reads."""
    missing = [
        (date, clean_text(host, TEXT_LIMITS["host"]), clean_text(decode(path), TEXT_LIMITS["path"]))
        + (count,)
        for (date, host, path), count in not_found.items()
    ]
    days, hosts, paths, requests = (
        (list(c) for c in zip(*missing, strict=True)) if missing else ([], [], [], [])
    )
    params = {"file": file_id, "days": days, "hosts": hosts, "paths": paths, "requests": requests}
    emptied = [row[:4] for row in conn.execute(_PAGE_VIEWS, params) if row[4] == 0]
    if emptied:
        conn.execute(
            """DELETE FROM daily_page_views t
               USING unnest(%s::text[], %s::date[], %s::text[], %s::text[])
                     AS z (dimension, day, host, value)
               WHERE (t.dimension, t.day, t.host, t.value) = (z.dimension, z.day, z.host, z.value)
                 AND t.page_views = 0""",
            [list(column) for column in zip(*emptied, strict=True)],
        )
    emptied = [row[:5] for row in conn.execute(_TRAFFIC, {"file": file_id}) if row[5] == 0]
    if emptied:
        conn.execute(
            """DELETE FROM daily_traffic t
               USING unnest(%s::date[], %s::text[], %s::text[], %s::text[], %s::text[])
                     AS z (day, host, edge, status_class, kind)
               WHERE (t.day, t.host, t.edge, t.status_class, t.kind)
                     = (z.day, z.host, z.edge, z.status_class, z.kind)
                 AND t.requests = 0""",
            [list(column) for column in zip(*emptied, strict=True)],
        )
    changed = conn.execute(_VISITOR_DAYS, {"file": file_id}).fetchall()
    gone = [row[:3] for row in changed if row[3] == 0]
    if gone:
        conn.execute(
            """DELETE FROM visitor_days t
               USING unnest(%s::date[], %s::text[], %s::bigint[]) AS z (day, host, visitor_id)
               WHERE (t.day, t.host, t.visitor_id) = (z.day, z.host, z.visitor_id)
                 AND t.page_views = 0""",
            [list(column) for column in zip(*gone, strict=True)],
        )
    if changed:
        conn.execute(
            """INSERT INTO stale_visitor_sketches
               SELECT DISTINCT day, host FROM unnest(%s::date[], %s::text[]) AS k (day, host)
               ORDER BY 1, 2 ON CONFLICT DO NOTHING""",
            ([row[0] for row in changed], [row[1] for row in changed]),
        )


def after_stitch(conn: psycopg.Connection) -> tuple[int, int]:
    """What the stitcher does for the dashboard after its batches, each in a short
    transaction: add the session changes its statements noted to daily_sessions
    and monthly_sessions, and remake the visitor sketches of the days ingest
    marked stale. Returns (changes, days). What others add meanwhile waits for
    the next call."""
    with conn.transaction():
        changes = conn.execute("SELECT daily_sessions_apply_changes()").fetchone()[0]
    with conn.transaction():
        days = conn.execute(
            """WITH stale AS (DELETE FROM stale_visitor_sketches RETURNING day, host)
               SELECT count(*), visitor_sketches_update(array_agg(day), array_agg(host))
               FROM stale"""
        ).fetchone()[0]
    return changes, days


def rebuild(conn: psycopg.Connection, shares: bool = True) -> None:
    """Compute every rollup afresh from page_views and sessions (see
    dashboard_rebuild in 0009_dashboard.sql)."""
    with conn.transaction():
        conn.execute("SELECT dashboard_rebuild(%s)", (shares,))
