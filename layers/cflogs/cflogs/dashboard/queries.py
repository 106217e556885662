"""The dashboard's figures: every view from the daily rollups of migration 0009.

A Query is a range of local days in a time zone, a host and filters. Without
filters every figure comes from the rollups. A filter (dimension = value, clicked
in a table) is answered from page_views and sessions of the range instead, through
the same dimension functions the rollups are built with, so the rules are the same.
Cards and the time series are exact in any time zone (the rollups keep the hour
of day); tables, visitors and delivery count the UTC days that overlap the range.
Tables read whole months of a range from the monthly rollups.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

# Dimensions of page views and of sessions (page_view_dimensions and
# session_dimensions in 0009_dashboard.sql); a filter applies where it exists.
PAGE_VIEW_DIMENSIONS = frozenset(
    ("page", "status", "device", "browser", "browser_version", "os", "os_version", "country")
    + ("region", "city", "search", "edge", "bot")
)
SESSION_DIMENSIONS = frozenset(
    ("entry", "exit", "category", "source", "campaign", "device", "browser", "os", "country")
)
TRAFFIC_DIMENSIONS = {"edge": "edge"}  # filter dimension -> daily_traffic column


@dataclass(frozen=True)
class TableSpec:
    title: str
    source: str  # pv, sessions or traffic
    dimension: str
    columns: tuple[str, ...]  # of the source's figures, after the dimension's value
    heading: str
    order: str = "1"  # the figure to sort by, descending
    names: tuple[str, ...] = ()  # headings for the columns, when not their figures' names

    @property
    def headings(self) -> tuple[str, ...]:
        return (self.heading, *(self.names or self.columns))


# What each source's query returns after the value (and its label).
FIGURES = {
    "pv": ("page views", "share", "bytes", "seconds"),
    "sessions": ("sessions", "share", "bounce rate", "duration", "pages per session"),
    "traffic": ("requests", "share", "bytes", "cache hits"),
}

TABLES = {
    "pages": TableSpec("Top pages", "pv", "page", ("page views", "share"), "page"),
    "entry": TableSpec("Entry pages", "sessions", "entry", ("sessions", "bounce rate"), "page"),
    "exit": TableSpec("Exit pages", "sessions", "exit", ("sessions", "share"), "page"),
    "not_found": TableSpec(
        "Not found (404)", "pv", "not_found", ("page views",), "page", names=("requests",)
    ),
    "slow": TableSpec(
        "Slowest pages", "pv", "page", ("seconds", "page views"), "page", order="seconds"
    ),
    "categories": TableSpec(
        "Channels", "sessions", "category", ("sessions", "share", "bounce rate"), "channel"
    ),
    "sources": TableSpec(
        "Sources", "sessions", "source", ("sessions", "share", "bounce rate"), "source"
    ),
    "search": TableSpec("Search terms", "pv", "search", ("page views",), "terms"),
    "campaigns": TableSpec(
        "Campaigns", "sessions", "campaign", ("sessions", "bounce rate"), "source / medium / name"
    ),
    "countries": TableSpec("Countries", "pv", "country", ("page views", "share"), "country"),
    "regions": TableSpec("Regions", "pv", "region", ("page views", "share"), "region"),
    "cities": TableSpec("Cities", "pv", "city", ("page views", "share"), "city"),
    "devices": TableSpec("Devices", "pv", "device", ("page views", "share"), "device"),
    "browsers": TableSpec("Browsers", "pv", "browser", ("page views", "share"), "browser"),
    "browser_versions": TableSpec(
        "Browser versions", "pv", "browser_version", ("page views", "share"), "version"
    ),
    "os": TableSpec("Operating systems", "pv", "os", ("page views", "share"), "system"),
    "os_versions": TableSpec("OS versions", "pv", "os_version", ("page views", "share"), "version"),
    "bots": TableSpec("Bots", "pv", "bot", ("page views", "share"), "bot"),
    "status_classes": TableSpec(
        "Status classes (all requests)", "traffic", "status_class", ("requests", "share"), "status"
    ),
    "status_codes": TableSpec(
        "Status codes (page views)", "pv", "status", ("page views", "share"), "status"
    ),
    "edges": TableSpec(
        "Edge locations", "traffic", "edge", ("requests", "share", "bytes", "cache hits"), "edge"
    ),
    "bandwidth": TableSpec(
        "Bandwidth by page", "pv", "page", ("bytes", "page views"), "page", order="bytes"
    ),
}

VIEWS = {
    "overview": ("Overview", ("pages", "sources", "countries", "devices")),
    "pages": ("Pages", ("pages", "entry", "exit", "not_found", "slow")),
    "sources": ("Sources", ("categories", "sources", "search", "campaigns")),
    "locations": ("Locations", ("countries", "regions", "cities")),
    "technology": ("Technology", ("devices", "browsers", "browser_versions", "os", "os_versions")),
    "bots": ("Bots", ("bots",)),
    "delivery": ("Delivery", ("status_classes", "status_codes", "edges", "bandwidth")),
}

TOP = 10
# Pages with fewer timed page views than this are left out of the slowest pages.
SLOW_MIN_VIEWS = 5


@dataclass(frozen=True)
class Query:
    since: date
    until: date  # inclusive
    host: str | None = None
    tz: str = "UTC"
    filters: tuple[tuple[str, str], ...] = ()
    interval: str | None = None  # day or hour; by default hour for up to 2 days

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    @property
    def step(self) -> str:
        return self.interval or ("hour" if self.days <= 2 else "day")

    def bounds(self) -> tuple[datetime, datetime]:
        """The range as UTC times without zone: [start, end)."""
        zone, utc = ZoneInfo(self.tz), ZoneInfo("UTC")

        def at(day: date) -> datetime:
            return datetime.combine(day, time(), zone).astimezone(utc).replace(tzinfo=None)

        return at(self.since), at(self.until + timedelta(days=1))

    def previous(self) -> Query:
        """The period of the same length just before."""
        return replace(
            self, since=self.since - timedelta(days=self.days), until=self.since - timedelta(1)
        )

    def params(self) -> dict:
        start, end = self.bounds()
        return {
            "start": start,
            "end": end,
            "first": start.date(),
            "last": (end - timedelta(microseconds=1)).date(),
            "host": self.host,
            "tz": self.tz,
            "step": self.step,
        }


# ---------------------------------------------------------------- sources

_HOST = " AND host = %(host)s"


def _filter_clause(function: str, filters, params: dict) -> str:
    """`function` (with {} for the dimension) equal to each filter's value. The
    dimension is a literal (one of the known names), so the CASE folds to one
    expression."""
    clauses = []
    for i, (dimension, value) in enumerate(filters):
        if dimension not in PAGE_VIEW_DIMENSIONS | SESSION_DIMENSIONS:
            raise ValueError(f"unknown dimension {dimension!r}")
        params[f"fv{i}"] = value
        clauses.append(f" AND {function.format(repr(dimension))} = %(fv{i})s")
    return "".join(clauses)


def _by_month(table: str, params: dict) -> str:
    """The rows of daily_TABLE, with those of the whole months of the range from
    monthly_TABLE instead: a year is 12 rows per value, not 365."""
    first, last = params["first"], params["last"]
    start = first if first.day == 1 else (first.replace(day=28) + timedelta(4)).replace(day=1)
    end = (last + timedelta(1)).replace(day=1)  # the first day after the last whole month
    if (last + timedelta(1)).day != 1:
        end = last.replace(day=1)
    if start >= end:
        return f"daily_{table}"
    params["month_start"], params["month_end"] = start, end
    return f"""(SELECT * FROM daily_{table} WHERE day < %(month_start)s
                UNION ALL SELECT * FROM monthly_{table}
                          WHERE day >= %(month_start)s AND day < %(month_end)s
                UNION ALL SELECT * FROM daily_{table} WHERE day >= %(month_end)s) AS rolled"""


def _page_views(query: Query, params: dict, whole_months: bool = False) -> str | None:
    """daily_page_views (with monthly rows for whole months: tables only), or its
    rows computed from the range's page views when filtered; None when a filter
    is not a page view's dimension."""
    if not query.filters:
        return _by_month("page_views", params) if whole_months else "daily_page_views"
    if any(d not in PAGE_VIEW_DIMENSIONS for d, _ in query.filters):
        return None
    where = _filter_clause("page_view_dimension(p, {})", query.filters, params)
    return f"""(SELECT d.dimension, (p.ts AT TIME ZONE 'UTC')::date AS day, p.host, d.value,
                       d.label, 1 AS page_views, coalesce(p.bytes, 0) AS bytes,
                       coalesce(p.time_taken, 0) AS time_taken,
                       (p.time_taken IS NOT NULL)::int AS timed
                FROM page_views p CROSS JOIN LATERAL page_view_dimensions(p) AS d
                WHERE p.ts >= %(start)s AT TIME ZONE 'UTC' AND p.ts < %(end)s AT TIME ZONE 'UTC'
                {where}) AS raw"""


_SESSION_ARGS = (
    "s.started_at, s.landing_page, s.exit_page, s.referrer_category, s.referrer_source,"
    " s.referrer_host, s.utm_source, s.utm_medium, s.utm_campaign, s.device_type, s.browser,"
    " s.os, s.country_code"
)


def _sessions(query: Query, params: dict, whole_months: bool = False) -> str | None:
    if not query.filters:
        return _by_month("sessions", params) if whole_months else "daily_sessions"
    if any(d not in SESSION_DIMENSIONS for d, _ in query.filters):
        return None
    where = _filter_clause(f"session_dimension({{}}, {_SESSION_ARGS})", query.filters, params)
    return f"""(SELECT d.dimension, (s.started_at AT TIME ZONE 'UTC')::date AS day, s.host,
                       d.value, 1 AS sessions, (s.page_views = 1)::int AS bounces,
                       extract(epoch FROM s.duration) AS duration, s.page_views
                FROM sessions s CROSS JOIN LATERAL session_dimensions({_SESSION_ARGS}) AS d
                WHERE s.started_at >= %(start)s AT TIME ZONE 'UTC'
                  AND s.started_at < %(end)s AT TIME ZONE 'UTC' {where}) AS raw"""


def _traffic_filter(query: Query, params: dict) -> str | None:
    clauses = []
    for i, (dimension, value) in enumerate(query.filters):
        column = TRAFFIC_DIMENSIONS.get(dimension)
        if column is None:
            return None
        params[f"tv{i}"] = value
        clauses.append(f" AND {column} = %(tv{i})s")
    return "".join(clauses)


def _days(query: Query) -> str:
    return " day BETWEEN %(first)s AND %(last)s" + (_HOST if query.host else "")


def _hours(query: Query) -> str:
    """The 'hour' rows inside the range, exactly."""
    return (
        " dimension = 'hour' AND" + _days(query) + " AND day + value::int * interval '1 hour'"
        " >= %(start)s AND day + value::int * interval '1 hour' < %(end)s"
    )


# ---------------------------------------------------------------- figures


def cards(conn: psycopg.Connection, query: Query) -> dict:
    """visitors, page views, sessions, bounce rate, visit duration (mean seconds),
    pages per session; None where a filter does not apply."""
    params = query.params()
    found = dict.fromkeys(
        ("visitors", "page views", "sessions", "bounce rate", "visit duration", "pages per session")
    )
    pv = _page_views(query, params)
    if pv is not None:
        found["page views"] = conn.execute(
            f"SELECT coalesce(sum(page_views), 0) FROM {pv} WHERE {_hours(query)}", params
        ).fetchone()[0]
        found["visitors"] = _visitors(conn, query, params)
        found["visitors estimated"] = not query.filters and query.days > EXACT_VISITOR_DAYS
    ss = _sessions(query, params)
    if ss is not None:
        sessions, bounces, duration, pages = conn.execute(
            f"""SELECT coalesce(sum(sessions), 0), sum(bounces), sum(duration), sum(page_views)
                FROM {ss} WHERE {_hours(query)}""",
            params,
        ).fetchone()
        found["sessions"] = sessions = int(sessions)
        if sessions:
            found["bounce rate"] = round(float(bounces) / sessions, 3)
            found["visit duration"] = round(float(duration) / sessions)
            found["pages per session"] = round(float(pages) / sessions, 2)
    return {name: _number(value) for name, value in found.items()}


# Longer ranges estimate distinct visitors from sketches (see 0009_dashboard.sql):
# an exact count over 30 days of visitor_days takes 200 ms at 10 million page views.
EXACT_VISITOR_DAYS = 7


def _visitors(conn: psycopg.Connection, query: Query, params: dict) -> int:
    if not query.filters and query.days > EXACT_VISITOR_DAYS:
        sketches = _by_month("visitor_sketches", params)
        sql = f"SELECT visitor_estimate(array_agg(sketch)) FROM {sketches} WHERE {_days(query)}"
    elif not query.filters:
        sql = f"SELECT count(DISTINCT visitor_id) FROM visitor_days WHERE {_days(query)}"
    else:
        where = _filter_clause("page_view_dimension(p, {})", query.filters, params)
        sql = f"""SELECT count(DISTINCT visitor_id) FROM page_views p
                  WHERE NOT is_bot AND ts >= %(start)s AT TIME ZONE 'UTC'
                    AND ts < %(end)s AT TIME ZONE 'UTC'
                    {_HOST if query.host else ""} {where}"""
    return conn.execute(sql, params).fetchone()[0]


def series(conn: psycopg.Connection, query: Query) -> list[tuple]:
    """(bucket start as local time, page views, sessions) per day or hour, every
    bucket of the range (zeros included)."""
    params = query.params()
    counts: dict[datetime, list] = {}
    local = (
        "date_trunc(%(step)s, (day + value::int * interval '1 hour')"
        " AT TIME ZONE 'UTC' AT TIME ZONE %(tz)s)"
    )
    for i, (source, column) in enumerate(
        ((_page_views(query, params), "page_views"), (_sessions(query, params), "sessions"))
    ):
        if source is None:
            continue
        rows = conn.execute(
            f"SELECT {local}, sum({column}) FROM {source} WHERE {_hours(query)} GROUP BY 1",
            params,
        )
        for bucket, count in rows:
            counts.setdefault(bucket, [0, 0])[i] = int(count)
    step = timedelta(hours=1) if query.step == "hour" else timedelta(days=1)
    bucket, end = datetime.combine(query.since, time()), datetime.combine(query.until, time())
    end += timedelta(days=1)
    found = []
    while bucket < end:
        found.append((bucket, *counts.get(bucket, (0, 0))))
        bucket += step
    return found


def table(
    conn: psycopg.Connection,
    query: Query,
    name: str,
    limit: int | None = TOP,
    cache: dict | None = None,
):
    """The rows of one table: (value, label, *figures of its columns), sorted by
    its figure; None when a filter does not apply to its source. Tables of the
    same dimension (top and slowest pages) share one query through `cache`."""
    spec = TABLES[name]
    cache = {} if cache is None else cache
    key = (spec.source, spec.dimension)
    if key not in cache:
        cache[key] = _aggregate(conn, query, spec.source, spec.dimension)
    rows = cache[key]
    if rows is None:
        return None
    figures = FIGURES[spec.source]
    if spec.order == "seconds":
        rows = [row for row in rows if row[-1] >= SLOW_MIN_VIEWS]
    by = figures.index(spec.order if spec.order != "1" else spec.columns[0]) + 2
    rows = sorted(rows, key=lambda row: (row[by] is None, -(row[by] or 0), row[0]))
    picked = [figures.index(column) + 2 for column in spec.columns]
    return [(row[0], row[1], *(row[i] for i in picked)) for row in rows[:limit]]


def _aggregate(conn: psycopg.Connection, query: Query, source: str, dimension: str):
    """Every value of a dimension in the range with the source's FIGURES (and,
    for page views, the number of timed ones last)."""
    params = query.params()
    params["dimension"] = dimension
    if source == "pv":
        rows = _page_views(query, params, whole_months=True)
        if rows is None or (dimension == "not_found" and query.filters):
            return None
        sql = f"""SELECT value, max(label), sum(page_views),
                         round(100.0 * sum(page_views) / sum(sum(page_views)) OVER (), 1),
                         sum(bytes), round((sum(time_taken) / nullif(sum(timed), 0))::numeric, 3),
                         sum(timed)
                  FROM {rows} WHERE dimension = %(dimension)s AND {_days(query)}
                  GROUP BY value HAVING sum(page_views) > 0"""
    elif source == "sessions":
        rows = _sessions(query, params, whole_months=True)
        if rows is None:
            return None
        sql = f"""SELECT value, NULL, sum(sessions),
                         round(100.0 * sum(sessions) / sum(sum(sessions)) OVER (), 1),
                         round(sum(bounces)::numeric / sum(sessions), 3),
                         round(sum(duration)::numeric / sum(sessions)),
                         round(sum(page_views)::numeric / sum(sessions), 2)
                  FROM {rows} WHERE dimension = %(dimension)s AND {_days(query)}
                  GROUP BY value HAVING sum(sessions) > 0"""
    else:
        where = _traffic_filter(query, params)
        if where is None:
            return None
        sql = f"""SELECT {dimension}, NULL, sum(requests),
                         round(100.0 * sum(requests) / sum(sum(requests)) OVER (), 1),
                         sum(bytes), round(sum(hits)::numeric / nullif(sum(requests), 0), 3)
                  FROM daily_traffic WHERE {_days(query)} {where} GROUP BY 1"""
    return [tuple(_number(v) for v in row) for row in conn.execute(sql, params)]


def delivery(conn: psycopg.Connection, query: Query) -> dict | None:
    """All requests (assets too): requests, bytes, cache hit ratio."""
    params = query.params()
    where = _traffic_filter(query, params)
    if where is None:
        return None
    requests, sent, hits = conn.execute(
        f"""SELECT coalesce(sum(requests), 0), coalesce(sum(bytes), 0), sum(hits)
            FROM daily_traffic WHERE {_days(query)} {where}""",
        params,
    ).fetchone()
    return {
        "requests": int(requests),
        "bytes": int(sent),
        "cache hit ratio": round(float(hits) / int(requests), 3) if requests else None,
    }


def _number(value):
    """PostgreSQL's numerics as int or float, for JSON and formatting."""
    if value is None or isinstance(value, int | float | str):
        return value
    return int(value) if value == value.to_integral_value() else float(value)


# ---------------------------------------------------------------- the whole view


@dataclass
class View:
    name: str
    query: Query
    cards: dict = field(default_factory=dict)
    previous: dict = field(default_factory=dict)
    series: list[tuple] = field(default_factory=list)
    previous_series: list[tuple] = field(default_factory=list)
    delivery: dict | None = None
    tables: dict[str, list | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        q = self.query
        return {
            "view": self.name,
            "since": q.since.isoformat(),
            "until": q.until.isoformat(),
            "host": q.host,
            "tz": q.tz,
            "filters": [list(f) for f in q.filters],
            "cards": self.cards,
            "previous": self.previous,
            "series": [[b.isoformat(), pv, s] for b, pv, s in self.series],
            "previous_series": [[b.isoformat(), pv, s] for b, pv, s in self.previous_series],
            "delivery": self.delivery,
            "tables": {
                name: None
                if rows is None
                else {"columns": columns(name), "rows": [list(row) for row in rows]}
                for name, rows in self.tables.items()
            },
        }


def columns(table_name: str) -> list[str]:
    """The columns of a table's rows: its value, the value's name (countries), figures."""
    spec = TABLES[table_name]
    return [spec.heading, "name", *(spec.names or spec.columns)]


def view(conn: psycopg.Connection, name: str, query: Query, limit: int | None = TOP) -> View:
    found = View(name, query)
    with conn.transaction():  # one snapshot for every figure
        found.cards = cards(conn, query)
        found.previous = cards(conn, query.previous())
        found.series = series(conn, query)
        found.previous_series = series(conn, query.previous())
        if name == "delivery":
            found.delivery = delivery(conn, query)
        cache: dict = {}
        for table_name in VIEWS[name][1]:
            found.tables[table_name] = table(conn, query, table_name, limit, cache)
    return found


def data_range(conn: psycopg.Connection, host: str | None = None) -> tuple[date, date] | None:
    """The first and last UTC day with page views, or None for an empty database."""
    with conn.transaction():
        first, last = conn.execute(
            "SELECT min(day), max(day) FROM daily_page_views WHERE dimension = 'total'"
            + (" AND host = %(host)s" if host else ""),
            {"host": host},
        ).fetchone()
    return None if first is None else (first, last)


def hosts(conn: psycopg.Connection) -> list[str]:
    with conn.transaction():
        rows = conn.execute(
            "SELECT DISTINCT host FROM daily_page_views WHERE dimension = 'total' ORDER BY 1"
        )
        return [row[0] for row in rows]
