"""The dashboard as a person uses it, in headless Chromium (Debian's, driven by
Playwright: no browser download): open it on two generated days, check the cards
against SQL, click a filter, change the range, check again; the layout (numbers
right-aligned, headers on one line, bars not squeezed, no sideways scrolling on a
phone). CFLOGS_SCREENSHOTS=DIR keeps the screenshots (docs/ has them)."""

from __future__ import annotations

import os
import shutil
import threading
from datetime import date
from pathlib import Path

import pytest

from cflogs import db, generate, geodb, ingest, sessions
from cflogs.dashboard import app
from tests.conftest import clean_tables

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START = date(2025, 6, 2)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("no chromium: .ci/run installs Debian's chromium package where it can")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extras)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def dashboard(env, tmp_path, monkeypatch):
    """Two generated days loaded and stitched, the dashboard served on a free port."""
    monkeypatch.setenv("GEOIP_DB_PATH", str(geodb.write(tmp_path / "City.mmdb")))
    generate.generate(tmp_path / "logs", days=2, visitors_per_hour=8, start=START, seed=3)
    pipeline = ingest.Pipeline()
    conn = db.connect(autocommit=True)
    clean_tables(conn)
    sources = [ingest.local_source(p) for p in sorted((tmp_path / "logs").glob("*.gz"))]
    with db.connect() as loading:
        for source in sources:
            result = ingest.ingest(loading, source, pipeline)
            assert result.status == "done", result.reason
    sessions.stitch(conn)
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, app.Dashboard(lambda: conn), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", conn
    server.shutdown()
    server.server_close()
    conn.close()


def card(page, name: str) -> int:
    return int(page.locator(f'[data-card="{name}"] b').inner_text().replace(",", ""))


def human(conn, where: str = "TRUE", params=()) -> tuple[int, int]:
    return conn.execute(
        f"SELECT count(*), count(DISTINCT visitor_id) FROM page_views WHERE NOT is_bot AND {where}",
        params,
    ).fetchone()


def shoot(page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("CFLOGS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"dashboard-{name}.png"), full_page=True)


def test_filter_and_range_in_a_real_browser(browser, dashboard, tmp_path):
    url, conn = dashboard
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/?from=2025-06-02&to=2025-06-03")
    views, visitors = human(conn)
    assert (card(page, "page views"), card(page, "visitors")) == (views, visitors)
    assert card(page, "sessions") == conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    shoot(page, "overview", tmp_path)

    # Click the top country: the filter is in the URL and every card follows it.
    link = page.locator('[data-table="countries"] a[data-filter="country"]').first
    code = link.inner_text().rsplit("(", 1)[1].rstrip(")")
    link.click()
    page.wait_for_url("**f=country*")
    assert page.locator('[data-chip="country"]').count() == 1
    views, visitors = human(conn, "country_code = %s", (code,))
    assert (card(page, "page views"), card(page, "visitors")) == (views, visitors)
    sessions_there = conn.execute(
        "SELECT count(*) FROM sessions WHERE country_code = %s", (code,)
    ).fetchone()[0]
    assert card(page, "sessions") == sessions_there

    # Change the range to the second day only, with the form: the filter stays.
    page.fill('input[name="from"]', "2025-06-03")
    page.fill('input[name="to"]', "2025-06-03")
    page.click('button[type="submit"]')
    page.wait_for_url("**from=2025-06-03*")
    second_day = "ts >= '2025-06-03' AND ts < '2025-06-04'"
    views, _ = human(conn, f"country_code = %s AND {second_day}", (code,))
    assert card(page, "page views") == views
    assert page.locator("svg.chart rect").count() == 24  # one day: by hour
    page.locator('[data-chip="country"] a').click()  # remove the filter
    page.wait_for_url(lambda u: "f=country" not in u)
    assert card(page, "page views") == human(conn, second_day)[0]

    # Previous period: the second day compared with the first.
    first_day = human(conn, "ts < '2025-06-03'")[0]
    title = page.locator('[data-card="page views"] small').get_attribute("title")
    assert title == f"previous period: {first_day:,}"


def test_layout_numbers_headers_bars_and_a_phone(browser, dashboard, tmp_path):
    url, _ = dashboard
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    for view in ("pages", "sources", "locations", "technology", "delivery"):
        page.goto(f"{url}/{view}?from=2025-06-02&to=2025-06-03")
        layout = page.evaluate(
            """() => ({
                numbers: [...document.querySelectorAll('td.n')].map(
                    td => getComputedStyle(td).textAlign),
                headers: [...document.querySelectorAll('th')].map(th => th.offsetHeight),
                rows: [...document.querySelectorAll('td')].map(td => td.offsetHeight),
                values: [...document.querySelectorAll('td.v')].map(td => td.offsetWidth),
            })"""
        )
        assert layout["numbers"] and set(layout["numbers"]) == {"right"}
        assert max(layout["headers"]) <= min(layout["rows"]) + 4  # no header wraps
        assert min(layout["values"]) >= 150  # the name column (with its bar) is not squeezed
        shoot(page, view, tmp_path)
    phone = browser.new_page(viewport={"width": 390, "height": 800})
    phone.goto(f"{url}/?from=2025-06-02&to=2025-06-03")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    shoot(phone, "phone", tmp_path)


def test_csv_export_downloads_the_whole_table(browser, dashboard, tmp_path):
    url, conn = dashboard
    page = browser.new_page()
    page.goto(f"{url}/pages?from=2025-06-02&to=2025-06-03")
    with page.expect_download() as download:
        page.locator('[data-table="pages"] h2 a').click()
    text = Path(download.value.path()).read_text()
    lines = text.strip().splitlines()
    paths = conn.execute("SELECT count(DISTINCT path) FROM page_views WHERE NOT is_bot")
    assert lines[0] == "page,name,page views,share" and len(lines) - 1 == paths.fetchone()[0]
