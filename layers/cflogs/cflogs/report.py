"""Analytics from the database: totals, traffic over time, pages, sources,
campaigns, technology, geography, bots and cache, for a terminal or one HTML page."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg

TOP = 10


@dataclass
class Filters:
    since: date | None = None
    until: date | None = None  # inclusive
    host: str | None = None

    def where(self, ts: str, host: str = "host") -> tuple[str, dict]:
        clauses, params = ["TRUE"], {}
        if self.since:
            clauses.append(f"{ts} >= %(since)s::date")
            params["since"] = self.since
        if self.until:
            clauses.append(f"{ts} < %(until)s::date + 1")
            params["until"] = self.until
        if self.host:
            clauses.append(f"{host} = %(host)s")
            params["host"] = self.host
        return " AND ".join(clauses), params


@dataclass
class Report:
    filters: Filters
    totals: dict = field(default_factory=dict)
    daily: list[tuple] = field(default_factory=list)  # day, page views, visitors, sessions
    hourly: list[tuple] = field(default_factory=list)  # hour of day (UTC), page views
    tables: dict[str, tuple[tuple[str, ...], list[tuple]]] = field(default_factory=dict)


def _rows(conn, sql: str, params: dict) -> list[tuple]:
    return conn.execute(sql, params).fetchall()


def build(conn: psycopg.Connection, filters: Filters | None = None) -> Report:
    filters = filters or Filters()
    report = Report(filters)
    pv, pv_params = filters.where("ts")
    ss, ss_params = filters.where("started_at")
    th, th_params = filters.where("hour")

    pages, bots, visitors = conn.execute(
        f"""SELECT count(*) FILTER (WHERE NOT is_bot), count(*) FILTER (WHERE is_bot),
                   count(DISTINCT visitor_id) FILTER (WHERE NOT is_bot)
            FROM page_views WHERE {pv}""",
        pv_params,
    ).fetchone()
    sessions, bounces, pages_in_sessions, median = conn.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE page_views = 1), sum(page_views),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM duration))
            FROM sessions WHERE {ss}""",
        ss_params,
    ).fetchone()
    requests, sent, hits = conn.execute(
        f"SELECT sum(requests), sum(bytes), sum(hits) FROM traffic_hourly WHERE {th}", th_params
    ).fetchone()
    report.totals = {
        "page views": pages,
        "visitors": visitors,
        "sessions": sessions,
        "bounce rate": _ratio(bounces, sessions),
        "pages per session": round(pages_in_sessions / sessions, 2) if sessions else None,
        "median session seconds": round(median) if median is not None else None,
        "bot page views": bots,
        "requests": requests or 0,
        "bytes sent": sent or 0,
        "cache hit ratio": _ratio(hits, requests),
    }
    report.daily = _rows(
        conn,
        f"""WITH p AS (SELECT (ts AT TIME ZONE 'UTC')::date AS day, count(*) AS page_views,
                              count(DISTINCT visitor_id) AS visitors
                       FROM page_views WHERE NOT is_bot AND {pv} GROUP BY 1),
                 s AS (SELECT (started_at AT TIME ZONE 'UTC')::date AS day, count(*) AS sessions
                       FROM sessions WHERE {ss} GROUP BY 1)
            SELECT day, coalesce(page_views, 0), coalesce(visitors, 0), coalesce(sessions, 0)
            FROM p FULL JOIN s USING (day) ORDER BY day""",
        {**pv_params, **ss_params},
    )
    report.hourly = _rows(
        conn,
        f"""SELECT extract(hour FROM ts AT TIME ZONE 'UTC')::int, count(*) FROM page_views
            WHERE NOT is_bot AND {pv} GROUP BY 1 ORDER BY 1""",
        pv_params,
    )

    def top(title, columns, sql, params):
        report.tables[title] = (columns, _rows(conn, sql + f" LIMIT {TOP}", params))

    human = f"FROM page_views WHERE NOT is_bot AND {pv}"
    top(
        "Top pages",
        ("page", "page views", "visitors"),
        f"SELECT host || path, count(*), count(DISTINCT visitor_id) {human} "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        pv_params,
    )
    for title, column in (("Landing pages", "landing_page"), ("Exit pages", "exit_page")):
        top(
            title,
            ("page", "sessions"),
            f"SELECT host || {column}, count(*) FROM sessions WHERE {ss} "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            ss_params,
        )
    by_session = (
        ("Referrer categories", "referrer_category", "category"),
        ("Referrer sources", "coalesce(referrer_source, referrer_host)", "source"),
        ("Devices", "device_type", "device"),
        ("Browsers", "browser", "browser"),
        ("Operating systems", "os", "OS"),
        ("Countries", "country_code", "country"),
    )
    for title, expression, label in by_session:
        top(
            title,
            (label, "sessions", "share %"),
            f"""SELECT coalesce({expression}, '(none)'), count(*),
                       round(100.0 * count(*) / sum(count(*)) OVER (), 1)
                FROM sessions WHERE {ss} GROUP BY 1 ORDER BY 2 DESC, 1""",
            ss_params,
        )
    top(
        "Campaigns",
        ("source", "medium", "campaign", "sessions"),
        f"""SELECT utm_source, coalesce(utm_medium, ''), coalesce(utm_campaign, ''), count(*)
            FROM sessions WHERE utm_source IS NOT NULL AND {ss}
            GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1""",
        ss_params,
    )
    top(
        "Bots",
        ("bot", "page views"),
        f"""SELECT coalesce(bot_name, browser, '(unknown)'), count(*) FROM page_views
            WHERE is_bot AND {pv} GROUP BY 1 ORDER BY 2 DESC, 1""",
        pv_params,
    )
    top(
        "Status classes",
        ("status", "requests", "share %"),
        f"""SELECT status_class, sum(requests),
                   round(100.0 * sum(requests) / sum(sum(requests)) OVER (), 1)
            FROM traffic_hourly WHERE {th} GROUP BY 1 ORDER BY 1""",
        th_params,
    )
    return report


def _ratio(part, whole) -> float | None:
    return round(part / whole, 3) if whole else None


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):  # sums and rounded shares from PostgreSQL
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _fmt_total(name: str, value) -> str:
    if value is None:
        return "-"
    if name in ("bounce rate", "cache hit ratio"):
        return f"{value:.1%}"
    if name == "pages per session":
        return f"{value:.2f}"
    if name == "bytes sent":
        return _bytes(int(value))
    return _fmt(value)


def _bytes(count: float) -> str:
    unit = "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            break
        count /= 1000
    return f"{count:,.0f} B" if unit == "B" else f"{count:,.1f} {unit}"


# ---------------------------------------------------------------- terminal


def print_report(report: Report, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    totals = Table(title="cflogs report", show_header=False)
    for name, value in report.totals.items():
        totals.add_row(name, _fmt_total(name, value))
    console.print(totals)
    daily = Table(title="By day (UTC)")
    for column in ("day", "page views", "visitors", "sessions"):
        daily.add_column(column, justify="right")
    for row in report.daily:
        daily.add_row(*(_fmt(v) for v in row))
    console.print(daily)
    for title, (columns, rows) in report.tables.items():
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(_fmt(v) for v in row))
        console.print(table)


# ---------------------------------------------------------------- HTML

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#b9c0cc}main{padding:20px 28px;max-width:1200px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:22px}.card span{color:#5b6475;font-size:13px}
section{background:#fff;border-radius:8px;padding:14px 16px;margin-top:16px;
box-shadow:0 1px 2px #0002}h2{font-size:16px;margin:0 0 10px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:16px}
.grid section{margin-top:0}table{border-collapse:collapse;width:100%}
td,th{padding:4px 6px;text-align:left;border-bottom:1px solid #eef0f3;font-size:13px}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#dbe7ff;height:8px;border-radius:4px}svg text{font-size:10px;fill:#5b6475}
"""


def _svg_columns(labels: list[str], values: list[int], title: str) -> str:
    width, height, pad = 900, 200, 28
    peak = max(values, default=0) or 1
    step = (width - pad) / max(len(values), 1)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (height - 2 * pad) * value / peak
        x = pad + i * step
        bars.append(
            f'<rect x="{x + 1:.1f}" y="{height - pad - h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#3b6fd8"><title>{html.escape(label)}: {value:,}</title></rect>'
        )
        if len(values) <= 31 or i % max(len(values) // 24, 1) == 0:
            bars.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 10}" text-anchor="middle">'
                f"{html.escape(label)}</text>"
            )
    return (
        f'<svg class="chart" role="img" aria-label="{html.escape(title)}" viewBox="0 0 {width} '
        f'{height}" width="100%"><text x="{pad}" y="14">max {peak:,}</text>{"".join(bars)}</svg>'
    )


def _html_table(title: str, columns: tuple[str, ...], rows: list[tuple]) -> str:
    numeric = [i for i, _ in enumerate(columns) if rows and isinstance(rows[0][i], int | float)]
    first_numeric = numeric[0] if numeric else None
    peak = max((row[first_numeric] for row in rows), default=0) if first_numeric is not None else 0
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            css = ' class="n"' if i in numeric else ""
            cells.append(f"<td{css}>{html.escape(_fmt(value))}</td>")
        if peak:
            share = 100 * row[first_numeric] / peak
            cells.append(
                f'<td style="width:30%"><div class="bar" style="width:{share:.0f}%"></div></td>'
            )
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(columns)}">no data</td></tr>')
    return (
        f"<section><h2>{html.escape(title)}</h2><table><thead><tr>{head}"
        f"{'<th></th>' if peak else ''}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def render_html(report: Report) -> str:
    f = report.filters
    scope = ", ".join(
        part
        for part in (
            f"from {f.since}" if f.since else "",
            f"until {f.until}" if f.until else "",
            f"host {f.host}" if f.host else "all hosts",
        )
        if part
    )
    cards = "".join(
        f'<div class="card"><b>{html.escape(_fmt_total(name, value))}</b>'
        f"<span>{html.escape(name)}</span></div>"
        for name, value in report.totals.items()
    )
    days = [str(row[0]) for row in report.daily]
    hourly = dict(report.hourly)
    charts = (
        "<section><h2>Page views by day (UTC)</h2>"
        + _svg_columns([d[5:] for d in days], [row[1] for row in report.daily], "page views by day")
        + "</section><section><h2>Page views by hour of day (UTC)</h2>"
        + _svg_columns(
            [f"{h:02d}" for h in range(24)], [hourly.get(h, 0) for h in range(24)], "by hour"
        )
        + "</section>"
    )
    tables = "".join(_html_table(t, c, r) for t, (c, r) in report.tables.items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>cflogs report</title><style>{CSS}</style></head><body>"
        f"<header><h1>Website analytics</h1><p>CloudFront access logs, {html.escape(scope)}. "
        "Visitors are keyed hashes; bots are counted apart.</p></header>"
        f'<main><div class="cards">{cards}</div>{charts}<div class="grid">{tables}</div>'
        "</main></body></html>"
    )
