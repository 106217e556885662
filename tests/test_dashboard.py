"""The dashboard's figures against SQL over page_views and sessions, on a few known
page views: unfiltered (rollups), filtered, in another time zone, over whole
months; the web app's pages, CSV and JSON; the Lambda handler; cflogs report."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from datetime import date
from pathlib import Path

import pytest

from cflogs import cli, db, sessions
from cflogs.dashboard import app, queries
from tests.logfiles import CHROME, GOOGLEBOT, IPHONE
from tests.test_sessions import load, pv
from tests.test_stitch_handler import FakeContext

ROOT = Path(__file__).resolve().parent.parent
DAY1, DAY3 = date(2025, 3, 10), date(2025, 3, 12)

FILES = {
    "d1": [
        pv("2025-03-10 10:00:00", "/", ip="192.0.2.1", ua=CHROME),
        pv("2025-03-10 10:05:00", "/pricing", ip="192.0.2.1", ua=CHROME),
        pv("2025-03-10 11:00:00", "/", ip="192.0.2.9", ua=GOOGLEBOT),
        pv("2025-03-10 23:30:00", "/", ip="192.0.2.2", ua=IPHONE),  # 00:30 in Berlin
    ],
    "d2": [
        pv("2025-03-11 09:00:00", "/docs", ip="192.0.2.1", ua=CHROME,
           referrer="https://www.google.com/"),
        pv("2025-03-11 09:01:00", "/missing", ip="192.0.2.1", ua=CHROME, status=404),
        pv("2025-03-11 12:00:00", "/pricing", ip="192.0.2.3", ua=CHROME,
           query="utm_source=news&utm_medium=email&utm_campaign=march"),
        pv("2025-03-11 12:00:00", "/", ip="192.0.2.4", ua=CHROME, host="docs.example.com"),
    ],
    "d3": [
        pv("2025-03-12 08:00:00", "/", ip="192.0.2.2", ua=IPHONE),
        pv("2025-03-12 09:00:00", "/about", ip="192.0.2.2", ua=IPHONE),
    ],
}  # fmt: skip


@pytest.fixture
def site(env, pipeline):
    """The page views above, loaded and stitched; an autocommit connection."""
    with db.connect(env, autocommit=True) as conn:
        from tests.conftest import clean_tables

        clean_tables(conn)
        for key, records in FILES.items():
            load(conn, pipeline, key, records)
        sessions.stitch(conn)
        yield conn


@pytest.fixture
def pipeline(env):
    from cflogs import ingest

    return ingest.Pipeline(env)


def sql_cards(conn, start: str, end: str, where: str = "TRUE", sessions_where: str = "TRUE"):
    """The overview's figures straight from page_views and sessions."""
    views, visitors = conn.execute(
        f"""SELECT count(*), count(DISTINCT visitor_id) FROM page_views
            WHERE NOT is_bot AND ts >= %s AND ts < %s AND {where}""",
        (start, end),
    ).fetchone()
    count, bounces, seconds = conn.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE page_views = 1),
                   sum(extract(epoch FROM duration))
            FROM sessions WHERE started_at >= %s AND started_at < %s AND {sessions_where}""",
        (start, end),
    ).fetchone()
    return views, visitors, count, round(bounces / count, 3), round(float(seconds) / count)


def figures(view: queries.View):
    c = view.cards
    return c["page views"], c["visitors"], c["sessions"], c["bounce rate"], c["visit duration"]


def test_overview_equals_sql_over_page_views_and_sessions(site):
    found = queries.view(site, "overview", queries.Query(DAY1, DAY3))
    assert figures(found) == sql_cards(site, "2025-03-10", "2025-03-13")
    assert found.cards["page views"] == 8  # the bot and the 404 are no human page views
    assert sum(row[1] for row in found.series) == 8 and len(found.series) == 3
    pages = {row[0]: row[2] for row in found.tables["pages"]}
    rows = site.execute(
        "SELECT path, count(*) FROM page_views WHERE NOT is_bot GROUP BY 1"
    ).fetchall()
    assert pages == dict(rows)


def test_previous_period_and_hourly_series(site):
    found = queries.view(site, "overview", queries.Query(date(2025, 3, 11), date(2025, 3, 11)))
    assert found.query.step == "hour" and len(found.series) == 24
    assert found.previous["page views"] == 3  # 10 March: two of visitor A's, one of B's
    assert [row[1] for row in found.series if row[1]] == [1, 2]  # 09:00 and 12:00


def test_time_zone_moves_the_day_boundaries(site):
    berlin = queries.Query(date(2025, 3, 11), date(2025, 3, 11), tz="Europe/Berlin")
    found = queries.view(site, "overview", berlin)
    # 10 March 23:00 UTC to 11 March 23:00 UTC: B's late page view is in, nothing else moves
    assert figures(found)[:3] == sql_cards(site, "2025-03-10 23:00Z", "2025-03-11 23:00Z")[:3]
    assert found.cards["page views"] == 4
    assert found.series[0][0].hour == 0 and found.series[0][1] == 1  # 00:30 local


def test_a_page_view_filter_equals_sql(site):
    query = queries.Query(DAY1, DAY3, filters=(("page", "/pricing"),))
    found = queries.view(site, "overview", query)
    assert found.cards["page views"] == 2 and found.cards["visitors"] == 2
    assert found.cards["sessions"] is None  # a page is no session dimension
    assert found.tables["sources"] is None
    assert {row[0] for row in found.tables["pages"]} == {"/pricing"}


def test_a_dimension_of_both_filters_page_views_and_sessions(site):
    browsers = queries.view(site, "technology", queries.Query(DAY1, DAY3)).tables["browsers"]
    top = browsers[0][0]
    found = queries.view(site, "overview", queries.Query(DAY1, DAY3, filters=(("browser", top),)))
    same = f"browser = {top!r}"  # a plain name: quoted alike in Python and SQL
    expected = sql_cards(site, "2025-03-10", "2025-03-13", same, same)
    assert figures(found) == expected
    assert found.cards["page views"] == browsers[0][2]


def test_host_sources_campaigns_and_not_found(site):
    docs = queries.view(site, "overview", queries.Query(DAY1, DAY3, host="docs.example.com"))
    assert docs.cards["page views"] == 1
    sources = queries.view(site, "sources", queries.Query(DAY1, DAY3))
    assert [row[0] for row in sources.tables["campaigns"]] == ["news / email / march"]
    assert "Google" in {row[0] for row in sources.tables["sources"]}
    pages = queries.view(site, "pages", queries.Query(DAY1, DAY3))
    assert pages.tables["not_found"] == [("/missing", None, 1)]
    entries = site.execute("SELECT landing_page, count(*) FROM sessions GROUP BY 1").fetchall()
    assert {row[0]: row[2] for row in pages.tables["entry"]} == dict(entries)
    bots = queries.view(site, "bots", queries.Query(DAY1, DAY3))
    assert [(row[0], row[2]) for row in bots.tables["bots"]] == [("Googlebot", 1)]


def test_whole_months_read_from_the_monthly_rollups_give_the_same_tables(site):
    months = queries.view(site, "technology", queries.Query(date(2025, 2, 1), date(2025, 4, 30)))
    days = queries.view(site, "technology", queries.Query(date(2025, 3, 2), date(2025, 3, 30)))
    assert "monthly_page_views" in queries._by_month("page_views", months.query.params())
    assert months.tables == days.tables
    assert months.cards["visitors estimated"] and days.cards["visitors estimated"]
    assert months.cards == days.cards
    assert days.cards["visitors"] == 4  # A, B, C and D: with so few the estimate is exact


# ---------------------------------------------------------------- the web app


def call(site, path: str, query: str = "", method: str = "GET"):
    return app.Dashboard(lambda: site).respond(method, path, query)


def test_pages_csv_json_and_errors(site):
    status, headers, body = call(site, "/", "from=2025-03-10&to=2025-03-12")
    assert status == "200 OK" and b'data-card="visitors"' in body
    assert dict(headers)["Content-Security-Policy"].startswith("default-src 'none'")
    status, _, body = call(site, "/pages.csv", "from=2025-03-10&to=2025-03-12&table=pages")
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == ["page", "name", "page views", "share"] and rows[1][:3] == ["/", "", "4"]
    status, _, body = call(site, "/sources.json", "from=2025-03-10&to=2025-03-12")
    assert json.loads(body)["cards"]["page views"] == 8
    for path, query, expected in (
        ("/", "tz=Mars/Olympus", "400 Bad Request"),
        ("/", "f=nonsense:1", "400 Bad Request"),
        ("/pages.csv", "table=nope", "400 Bad Request"),
        ("/secret", "", "404 Not Found"),
    ):
        assert call(site, path, query)[0] == expected
    assert call(site, "/", method="POST")[0] == "405 Method Not Allowed"


def test_filter_links_keep_the_range_and_add_the_filter(site):
    _, _, body = call(site, "/technology", "from=2025-03-10&to=2025-03-12&tz=Europe/Berlin")
    assert (
        b"/technology?from=2025-03-10&amp;to=2025-03-12&amp;tz=Europe%2FBerlin&amp;f=browser"
        in body
    )


def test_an_empty_database_says_no_data_yet(env, conn, capsys):
    with db.connect(env, autocommit=True) as empty:
        assert b"No data yet" in app.Dashboard(lambda: empty).respond("GET", "/", "")[2]
    assert cli.main(["report"]) == 0
    assert "no data yet" in capsys.readouterr().err


def test_lambda_function_url_event(site, env):
    spec = importlib.util.spec_from_file_location(
        "dashboard_app", ROOT / "functions" / "dashboard" / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = {
        "version": "2.0",
        "rawPath": "/locations",
        "rawQueryString": "from=2025-03-10&to=2025-03-12",
        "requestContext": {"http": {"method": "GET", "path": "/locations"}},
    }
    answer = module.handler(event, FakeContext(function_name="cflogs-DashboardFunction"))
    assert answer["statusCode"] == 200 and not answer["isBase64Encoded"]
    assert answer["headers"]["Content-Type"].startswith("text/html")
    assert 'data-table="countries"' in answer["body"]
    db.close_shared_connection()


def test_report_json_has_the_dashboards_figures(site, capsys, tmp_path):
    assert cli.main(["report", "--json", "--html", str(tmp_path / "r.html")]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["since"] == "2025-03-10" and found["until"] == "2025-03-12"
    assert found["cards"]["page views"] == 8
    assert set(queries.TABLES) <= set(found["tables"])
    html = (tmp_path / "r.html").read_text()
    assert "<script" not in html and 'data-table="edges"' in html


def test_serve_and_report_read_the_demos_database_until_there_is_one_of_ones_own(
    tmp_path, monkeypatch
):
    for name in ("DATABASE_URL", "DB_SECRET_ARN", "DB_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CFLOGS_DATA_DIR", str(tmp_path))
    assert cli.dashboard_settings(False) == (cli.Settings.from_env(), None)
    (tmp_path / "demo" / "pg").mkdir(parents=True)
    settings, which = cli.dashboard_settings(False)
    assert settings.data_dir == tmp_path / "demo" and "demo" in which
    (tmp_path / "pg").mkdir()
    assert cli.dashboard_settings(False)[0].data_dir == tmp_path
    assert cli.dashboard_settings(True)[0].data_dir == tmp_path / "demo"


def test_the_benchmarks_synthetic_data_gives_every_view(env, conn):
    from cflogs.dashboard import bench

    with db.connect(env, autocommit=True) as auto:
        bench.load(auto, 3000, 3)
        found = queries.view(auto, "overview", queries.Query(date(2025, 12, 29), bench.END))
        human = auto.execute("SELECT count(*) FROM page_views WHERE NOT is_bot").fetchone()[0]
        assert found.cards["page views"] == human and found.tables["countries"]
        assert set(bench.time_views(auto, found.query, 1)) == set(queries.VIEWS)


def test_csv_cells_never_start_a_formula_and_404s_are_no_filter_links(site):
    from cflogs.dashboard import render

    assert [render._cell(v) for v in ("=HYPERLINK(1)", "@x", "/a", 3)] == [
        "'=HYPERLINK(1)",
        "'@x",
        "/a",
        3,
    ]
    _, _, body = call(site, "/pages", "from=2025-03-10&to=2025-03-12")
    assert b'data-filter="not_found"' not in body and b'data-filter="page"' in body
