"""The dashboard as HTML (server-rendered: every state is in the URL, no script),
CSV and text; the static report is the same page with every view and no links."""

from __future__ import annotations

import csv
import html
import io
from datetime import date, timedelta
from importlib import resources
from urllib.parse import urlencode

from .queries import PAGE_VIEW_DIMENSIONS, SESSION_DIMENSIONS, TABLES, VIEWS, Query, View, columns

CARDS = ("visitors", "page views", "sessions", "bounce rate", "visit duration", "pages per session")
LOWER_IS_BETTER = frozenset({"bounce rate"})
FILTERABLE = PAGE_VIEW_DIMENSIONS | SESSION_DIMENSIONS


def css() -> str:
    return (resources.files(__package__) / "static" / "style.css").read_text()


# ---------------------------------------------------------------- formatting


def fmt(name: str, value) -> str:
    """A figure as shown: counts with separators, rates as percentages, seconds
    as durations, bytes in units."""
    if value is None:
        return "-"
    if name in ("bounce rate", "cache hit ratio", "cache hits"):
        return f"{value:.1%}"
    if name == "share":
        return f"{value:.1f}%"
    if name in ("visit duration", "duration"):
        minutes, seconds = divmod(int(value), 60)
        return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"
    if name == "seconds":
        return f"{value:.3f} s"
    if name == "bytes":
        return human_bytes(value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def human_bytes(count: float) -> str:
    unit = "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            break
        count /= 1000
    return f"{count:,.0f} B" if unit == "B" else f"{count:,.1f} {unit}"


def change(name: str, now, before) -> tuple[str, str]:
    """The change from the previous period, and whether it is good (up/down)."""
    if now is None or not before:
        return "", ""
    ratio = (now - before) / before
    if abs(ratio) < 0.0005:
        return "±0%", ""
    good = (ratio < 0) if name in LOWER_IS_BETTER else (ratio > 0)
    return f"{'▲' if ratio > 0 else '▼'} {abs(ratio):.0%}", "up" if good else "down"


# ---------------------------------------------------------------- URLs


def url(query: Query, view: str = "overview", suffix: str = "", **extra) -> str:
    """The address of a view (or of its CSV / JSON with `suffix`) for a query."""
    params = [("from", query.since.isoformat()), ("to", query.until.isoformat())]
    if query.host:
        params.append(("host", query.host))
    if query.tz != "UTC":
        params.append(("tz", query.tz))
    if query.interval:
        params.append(("interval", query.interval))
    params += [("f", f"{d}:{v}") for d, v in query.filters]
    params += list(extra.items())
    path = ("/" if view == "overview" and not suffix else f"/{view}") + suffix
    return f"{path}?{urlencode(params)}"


def with_filter(query: Query, dimension: str, value: str) -> Query:
    kept = tuple(f for f in query.filters if f[0] != dimension)
    return Query(query.since, query.until, query.host, query.tz, (*kept, (dimension, value)),
                 query.interval)  # fmt: skip


def without_filter(query: Query, dimension: str) -> Query:
    kept = tuple(f for f in query.filters if f[0] != dimension)
    return Query(query.since, query.until, query.host, query.tz, kept, query.interval)


def _range(query: Query, since: date, until: date) -> Query:
    return Query(since, until, query.host, query.tz, query.filters)


# ---------------------------------------------------------------- HTML parts

e = html.escape


def _cards(found: View) -> str:
    out = []
    for name in CARDS:
        now, before = found.cards.get(name), found.previous.get(name)
        text, mood = change(name, now, before)
        estimated = name == "visitors" and found.cards.get("visitors estimated")
        shown = ("≈ " if estimated else "") + fmt(name, now)
        tip = ' title="estimated: HyperLogLog, about 2% error"' if estimated else ""
        out.append(
            f'<div class="card" data-card="{e(name)}"><span>{e(name)}</span>'
            f"<b{tip}>{e(shown)}</b>"
            f'<small class="{mood}" title="previous period: {e(fmt(name, before))}">'
            f"{e(text) or '&nbsp;'}</small></div>"
        )
    if found.delivery:
        for name, value in found.delivery.items():
            out.append(
                f'<div class="card" data-card="{e(name)}"><span>{e(name)}</span>'
                f"<b>{e(fmt(name, value))}</b><small>&nbsp;</small></div>"
            )
    return f'<div class="cards">{"".join(out)}</div>'


def chart(found: View) -> str:
    """Page views per bucket as columns, the previous period as a line."""
    now = [row[1] for row in found.series]
    before = [row[1] for row in found.previous_series][: len(now)]
    if not any(before):
        before = []  # no data before the range: no line along zero
    width, height, left, bottom = 960, 220, 44, 24
    peak = max(now + before + [1])
    step = (width - left) / max(len(now), 1)
    plot = height - bottom - 10

    def y(value: float) -> float:
        return 10 + plot * (1 - value / peak)

    hourly = found.query.step == "hour"
    parts = [
        f'<line x1="{left}" x2="{width}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#c8ced8"/>',
        f'<text x="{left - 6}" y="{y(peak) + 4:.1f}" text-anchor="end">{peak:,}</text>',
        f'<text x="{left - 6}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>',
    ]
    every = max(len(now) // 12, 1)
    for i, (bucket, views, sessions) in enumerate(found.series):
        x = left + i * step
        label = bucket.strftime("%d %b %H:00" if hourly else "%a %d %b")
        tip = f"{label}: {views:,} page views, {sessions:,} sessions"
        if i < len(before):
            tip += f" (previous period: {before[i]:,})"
        parts.append(
            f'<rect x="{x + step * 0.12:.1f}" y="{y(views):.1f}" width="{step * 0.76:.1f}" '
            f'height="{y(0) - y(views):.1f}" fill="#3b6fd8"><title>{e(tip)}</title></rect>'
        )
        if i % every == 0:
            short = bucket.strftime("%H:00" if hourly and bucket.hour else "%d %b")
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 6}" text-anchor="middle">{short}</text>'
            )
    if before:
        points = " ".join(f"{left + (i + 0.5) * step:.1f},{y(v):.1f}" for i, v in enumerate(before))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="#e8890c" stroke-width="2" '
            'stroke-dasharray="5 3"/>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="page views by {found.query.step}">{"".join(parts)}</svg>'
        '<div class="legend"><i style="background:#3b6fd8"></i>page views'
        + ('<i style="background:#e8890c"></i>previous period' if before else "")
        + "</div>"
    )


def _table(found: View, name: str, static: bool) -> str:
    spec = TABLES[name]
    rows = found.tables.get(name)
    query = found.query
    links = "" if static else (
        f'<a href="{e(url(query, found.name, ".csv", table=name))}" download>CSV</a>'
    )  # fmt: skip
    head = f"<th>{e(spec.heading)}</th>" + "".join(
        f'<th class="n">{e(c)}</th>' for c in spec.names or spec.columns
    )
    body = []
    if rows is None:
        body.append(
            f'<tr><td class="empty" colspan="9">not available with the filters '
            f"({e(', '.join(d for d, _ in query.filters))}): this table counts "
            f"{'requests' if spec.source == 'traffic' else spec.source.replace('pv', 'page views')}"
            "</td></tr>"
        )
    elif not rows:
        body.append('<tr><td class="empty" colspan="9">nothing in this range</td></tr>')
    else:
        peak = max((row[2] or 0) for row in rows) or 1
        for value, label, *figures in rows:
            shown = f"{label} ({value})" if label else value
            width = 100 * (figures[0] or 0) / peak
            bar = f'<div class="bar" style="width:{width:.1f}%"></div>'
            if static or spec.dimension not in FILTERABLE:
                cell = f'<span class="t" title="{e(shown)}">{e(shown)}</span>'
            else:
                target = url(with_filter(query, spec.dimension, value), found.name)
                cell = (
                    f'<a href="{e(target)}" title="filter: {e(shown)}" '
                    f'data-filter="{e(spec.dimension)}">{e(shown)}</a>'
                )
            cells = "".join(
                f'<td class="n">{e(fmt(c, v))}</td>'
                for c, v in zip(spec.columns, figures, strict=True)
            )
            body.append(f'<tr><td class="v">{bar}{cell}</td>{cells}</tr>')
    return (
        f'<section data-table="{e(name)}"><h2><span>{e(spec.title)}</span>{links}</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>"
    )


def _controls(found: View, hosts: list[str], data: tuple[date, date]) -> str:
    q = found.query
    first, last = data
    presets = [
        ("last day", _range(q, last, last)),
        ("7 days", _range(q, last - timedelta(6), last)),
        ("30 days", _range(q, last - timedelta(29), last)),
        ("all time", _range(q, first, last)),
        ("◀ previous", q.previous()),
        ("next ▶", _range(q, q.until + timedelta(1), q.until + timedelta(q.days))),
    ]
    preset_links = "".join(
        f'<a href="{e(url(p, found.name))}">{e(text)}</a>' for text, p in presets
    )
    options = '<option value="">all hosts</option>' + "".join(
        f"<option{' selected' if h == q.host else ''}>{e(h)}</option>" for h in hosts
    )
    hidden = "".join(f'<input type="hidden" name="f" value="{e(d)}:{e(v)}">' for d, v in q.filters)
    intervals = "".join(
        f'<option value="{v}"{" selected" if (q.interval or "") == v else ""}>{t}</option>'
        for v, t in (("", "auto"), ("day", "by day"), ("hour", "by hour"))
    )
    chips = "".join(
        f'<span class="chip" data-chip="{e(d)}">{e(d)} = {e(v)}'
        f'<a href="{e(url(without_filter(q, d), found.name))}" title="remove">✕</a></span>'
        for d, v in q.filters
    )
    action = "/" if found.name == "overview" else f"/{found.name}"
    return (
        f'<form class="controls" method="get" action="{action}">'
        f'<label>from<input type="date" name="from" value="{q.since}"></label>'
        f'<label>to<input type="date" name="to" value="{q.until}"></label>'
        f'<label>host<select name="host">{options}</select></label>'
        f'<label>time zone<input name="tz" value="{e(q.tz)}" size="16"></label>'
        f'<label>series<select name="interval">{intervals}</select></label>{hidden}'
        f'<button type="submit">Apply</button><span class="presets">{preset_links}</span></form>'
        + (f'<div class="filters">filters: {chips}</div>' if chips else "")
    )


def _nav(found: View) -> str:
    return "".join(
        f'<a href="{e(url(found.query, name))}" class="{"on" if name == found.name else ""}">'
        f"{e(title)}</a>"
        for name, (title, _) in VIEWS.items()
    )


def _document(title: str, header: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{e(title)}</title><style>{css()}</style></head><body>"
        f"<header>{header}</header><main>{body}</main></body></html>"
    )


def _scope(q: Query) -> str:
    return (
        f"{q.since} to {q.until} ({q.tz}), {q.host or 'all hosts'}; "
        "tables and visitors count whole UTC days"
    )


def page(found: View, hosts: list[str], data: tuple[date, date]) -> str:
    """One view of the dashboard."""
    body = (
        _controls(found, hosts, data)
        + _cards(found)
        + f"<section><h2><span>Page views by {found.query.step}</span></h2>{chart(found)}"
        f'<p class="note">{e(_scope(found.query))}</p></section>'
        + '<div class="grid">'
        + "".join(_table(found, name, False) for name in found.tables)
        + "</div>"
    )
    header = f'<h1>cflogs</h1><nav class="views">{_nav(found)}</nav>'
    return _document(f"cflogs: {VIEWS[found.name][0]}", header, body)


def no_data(where: str = "") -> str:
    """The page of an empty database."""
    hint = (
        "Load CloudFront logs with <code>cflogs ingest PATH</code> and "
        "<code>cflogs stitch</code>, or run <code>make demo</code> for a generated week."
    )
    return _document(
        "cflogs: no data yet",
        "<h1>cflogs</h1>",
        f'<div class="nodata"><h2>No data yet</h2><p>{hint}</p><p>{e(where)}</p></div>',
    )


def static_report(views: list[View]) -> str:
    """Every view on one self-contained page (cflogs report --html)."""
    first = views[0]
    parts = [_cards(first)]
    parts.append(
        f"<section><h2><span>Page views by {first.query.step}</span></h2>{chart(first)}"
        f'<p class="note">{e(_scope(first.query))}</p></section>'
    )
    for found in views:
        if found.delivery:
            parts.append(f"<h2>{e(VIEWS[found.name][0])}</h2>" + _cards_delivery(found))
        parts.append(
            '<div class="grid">'
            + "".join(
                _table(found, name, True)
                for name in found.tables
                if found.name == "overview" or name not in VIEWS["overview"][1]
            )
            + "</div>"
        )
    header = f"<h1>Website analytics</h1><p>{e(_scope(first.query))}</p>"
    return _document("cflogs report", header, "".join(parts))


def _cards_delivery(found: View) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><span>{e(n)}</span><b>{e(fmt(n, v))}</b></div>'
        for n, v in found.delivery.items()
    ) + "</div>"  # fmt: skip


# ---------------------------------------------------------------- CSV


def csv_table(found: View, name: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns(name))
    for row in found.tables.get(name) or []:
        writer.writerow(["" if v is None else _cell(v) for v in row])
    return out.getvalue()


def _cell(value):
    """A value as a spreadsheet takes it: text that would start a formula (a
    path or search term from a log can be anything) is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
