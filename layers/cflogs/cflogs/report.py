"""The analytics report: the dashboard's figures (cflogs.dashboard) for a terminal,
as JSON for scripts, or as one self-contained HTML page."""

from __future__ import annotations

from datetime import date

import psycopg

from .dashboard import queries, render


def build(
    conn: psycopg.Connection,
    since: date | None = None,
    until: date | None = None,
    host: str | None = None,
    tz: str = "UTC",
) -> list[queries.View] | None:
    """Every view of the dashboard for the range (by default all the data); None
    when the database holds no page views yet."""
    data = queries.data_range(conn, host)
    if data is None:
        return None
    query = queries.Query(since or data[0], until or data[1], host, tz)
    return [queries.view(conn, name, query) for name in queries.VIEWS]


def as_json(views: list[queries.View]) -> dict:
    """One document: the range, cards, series and every table (as the dashboard's
    /VIEW.json, merged)."""
    merged = views[0].as_dict()
    merged.pop("view")
    for found in views[1:]:
        more = found.as_dict()
        merged["tables"].update(more["tables"])
        merged["delivery"] = merged["delivery"] or more["delivery"]
    return merged


def print_report(views: list[queries.View], console=None, tables: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    first = views[0]
    q = first.query
    cards = Table(title=f"cflogs: {q.since} to {q.until} ({q.tz}), {q.host or 'all hosts'}")
    for name in render.CARDS:
        cards.add_column(name, justify="right")
    cards.add_row(*(render.fmt(name, first.cards[name]) for name in render.CARDS))
    previous = [render.change(n, first.cards[n], first.previous[n])[0] for n in render.CARDS]
    cards.add_row(*previous, style="dim")
    console.print(cards)
    if not tables:
        return
    shown = set()
    for found in views:
        for name, rows in found.tables.items():
            if name in shown or not rows:
                continue
            shown.add(name)
            spec = queries.TABLES[name]
            table = Table(title=spec.title, title_justify="left")
            table.add_column(spec.heading, overflow="fold", max_width=60)
            for column in spec.names or spec.columns:
                table.add_column(column, justify="right")
            for value, label, *figures in rows:
                table.add_row(
                    f"{label} ({value})" if label else value,
                    *(render.fmt(c, v) for c, v in zip(spec.columns, figures, strict=True)),
                )
            console.print(table)


NO_DATA = (
    "no data yet: load logs with `cflogs ingest PATH` and `cflogs stitch`, "
    "or run `make demo` for a generated week"
)
