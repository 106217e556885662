"""The dashboard as a WSGI application: `cflogs serve` runs it with wsgiref on a
laptop, functions/dashboard runs it behind a Lambda function URL (lambda_event
turns the URL's event into a WSGI call). Read-only: GET only.

/             overview          /pages, /sources, /locations, /technology, /bots, /delivery
/VIEW.csv?table=NAME            one table of a view as CSV
/VIEW.json                      the view's figures (as cflogs report --json)
Query string: from, to (YYYY-MM-DD, local days), host, tz, interval (day, hour),
f=DIMENSION:VALUE (repeatable filters).
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from . import queries, render

log = logging.getLogger(__name__)

DEFAULT_DAYS = 7
# Everything is inline and same-origin; nothing may script or frame the page.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'"
)


class BadRequest(ValueError):
    pass


def parse_query(params: dict[str, list[str]], data: tuple[date, date]) -> queries.Query:
    """A Query from the query string; by default the last DEFAULT_DAYS days with data."""

    def one(name: str) -> str | None:
        values = params.get(name) or [""]
        return values[-1].strip() or None

    try:
        until = date.fromisoformat(one("to")) if one("to") else data[1]
        since = (
            date.fromisoformat(one("from")) if one("from") else until - timedelta(DEFAULT_DAYS - 1)
        )
    except ValueError as exc:
        raise BadRequest(f"dates are YYYY-MM-DD: {exc}") from None
    if since > until:
        since, until = until, since
    if (until - since).days > 3700:
        raise BadRequest("the range is longer than ten years")
    tz = one("tz") or "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {tz!r} (an IANA name, e.g. Europe/Berlin)") from None
    interval = one("interval")
    if interval not in (None, "day", "hour"):
        raise BadRequest("interval is day or hour")
    if interval == "hour" and (until - since).days > 62:
        interval = "day"  # thousands of columns would say nothing
    filters = []
    for item in params.get("f", []):
        dimension, _, value = item.partition(":")
        if dimension not in queries.PAGE_VIEW_DIMENSIONS | queries.SESSION_DIMENSIONS:
            raise BadRequest(f"unknown filter dimension {dimension!r}")
        filters.append((dimension, value))
    return queries.Query(since, until, one("host"), tz, tuple(filters), interval)


class Dashboard:
    """The WSGI callable. `connection` gives a live connection for each request."""

    def __init__(self, connection: Callable[[], psycopg.Connection]):
        self.connection = connection

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        status, headers, body = self.respond(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", "/") or "/",
            environ.get("QUERY_STRING", ""),
        )
        start_response(status, headers)
        return [body]

    def respond(self, method: str, path: str, query_string: str) -> tuple[str, list, bytes]:
        if method not in ("GET", "HEAD"):
            return _text("405 Method Not Allowed", "the dashboard only reads")
        if path == "/static/style.css":
            return "200 OK", [("Content-Type", "text/css; charset=utf-8")], render.css().encode()
        name, _, suffix = path.strip("/").partition(".")
        name = name or "overview"
        if name not in queries.VIEWS or suffix not in ("", "csv", "json"):
            return _text("404 Not Found", f"no such page: {path}")
        params = parse_qs(query_string, keep_blank_values=False)
        conn = self.connection()
        data = queries.data_range(conn)
        if data is None:
            if suffix == "json":
                return _json({"error": "no data yet"}, "404 Not Found")
            return "200 OK", _html_headers(), render.no_data().encode()
        try:
            query = parse_query(params, data)
            table = (params.get("table") or [None])[-1]
            if suffix == "csv" and table not in queries.VIEWS[name][1]:
                raise BadRequest(f"table is one of {', '.join(queries.VIEWS[name][1])}")
        except BadRequest as exc:
            return _text("400 Bad Request", str(exc))
        found = queries.view(conn, name, query, limit=None if suffix == "csv" else queries.TOP)
        if suffix == "csv":
            filename = f"cflogs-{table}-{query.since}-{query.until}.csv"
            return (
                "200 OK",
                [
                    ("Content-Type", "text/csv; charset=utf-8"),
                    ("Content-Disposition", f'attachment; filename="{filename}"'),
                ],
                render.csv_table(found, table).encode(),
            )
        if suffix == "json":
            return _json(found.as_dict())
        body = render.page(found, queries.hosts(conn), data)
        return "200 OK", _html_headers(), body.encode()


def _html_headers() -> list[tuple[str, str]]:
    return [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]


def _text(status: str, message: str) -> tuple[str, list, bytes]:
    return status, [("Content-Type", "text/plain; charset=utf-8")], message.encode()


def _json(value, status: str = "200 OK") -> tuple[str, list, bytes]:
    body = json.dumps(value, default=str).encode()
    return status, [("Content-Type", "application/json")], body


# ---------------------------------------------------------------- Lambda


def lambda_event(app: Dashboard, event: dict) -> dict:
    """Answer a Lambda function URL event (payload format 2.0) with the app."""
    http = event.get("requestContext", {}).get("http", {})
    environ = {
        "REQUEST_METHOD": http.get("method", "GET"),
        "PATH_INFO": event.get("rawPath", "/"),
        "QUERY_STRING": event.get("rawQueryString", ""),
        "wsgi.input": io.BytesIO(),
    }
    captured: dict = {}

    def start_response(status, headers):
        captured["status"], captured["headers"] = status, headers

    body = b"".join(app(environ, start_response))
    headers = dict(captured["headers"])
    textual = headers.get("Content-Type", "").startswith(("text/", "application/json"))
    return {
        "statusCode": int(captured["status"].split()[0]),
        "headers": headers,
        "body": body.decode() if textual else base64.b64encode(body).decode(),
        "isBase64Encoded": not textual,
    }


# ---------------------------------------------------------------- local server


def serve(connection: Callable[[], psycopg.Connection], host: str, port: int, ready=None) -> None:
    """Serve until interrupted (one request at a time: a laptop's dashboard)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
            log.info("%s %s", self.address_string(), format % args)

    with make_server(host, port, Dashboard(connection), handler_class=Quiet) as server:
        if ready:
            ready(server)
        server.serve_forever()
