"""A log file through ingest ends in correctly enriched page_views rows."""

from __future__ import annotations

import dataclasses
import io

import pytest

from cflogs import ingest
from cflogs.enrich import COLUMNS
from tests import agents, logfiles
from tests.geodb import write_city_db

CHECKED = ("request_id", "is_bot", "query", *COLUMNS)


def source(data: bytes, key: str = "E2EXAMPLE.2025-02-16-10.abcd1234.gz") -> ingest.Source:
    return ingest.Source("logs", key, "etag-1", len(data), open=lambda: io.BytesIO(data))


def rows(conn) -> list[dict]:
    found = conn.execute(
        f"SELECT {', '.join(CHECKED)} FROM page_views ORDER BY request_id"
    ).fetchall()
    return [dict(zip(CHECKED, row, strict=True)) for row in found]


@pytest.fixture
def settings(env, tmp_path):
    database = write_city_db(tmp_path / "GeoLite2-City.mmdb")
    return dataclasses.replace(env, geoip_db_path=str(database), own_domains=("example.org",))


def test_file_through_ingest_is_enriched(conn, settings):
    samsung_tablet = agents.TABLET[1][0]
    records = [
        logfiles.record(
            path="/pricing",
            ip="198.51.100.10",
            ua=logfiles.CHROME,
            referrer="https://www.google.co.uk/search?q=cloudfront logs",
            # as CloudFront logs the client's `spring%20sale`
            query="utm_source=newsletter&utm_medium=email&utm_campaign=spring%2520sale",
        ),
        logfiles.record(
            path="/blog/post",
            ip="2001:db8:1::7",
            ua=logfiles.IPHONE,
            referrer="https://m.facebook.com/",
            query="fbclid=IwAR2x",
        ),
        logfiles.record(path="/", ip="192.0.2.50", ua=logfiles.GOOGLEBOT),
        logfiles.record(
            path="/signup",
            ip="203.0.113.9",
            ua=samsung_tablet,
            referrer="https://docs.example.org/start",
            query="gclid=Cj0KCQiA&utm_medium=cpc",
            double=True,  # the 2013-2019 era's double-encoded user agent
        ),
        logfiles.record(path="/app.js", content_type="application/javascript"),
        logfiles.record(path="/about", ip="2001:db8:2::1", ua="-", referrer="-"),
    ]
    result = ingest.ingest(conn, source(logfiles.log_bytes(records)), ingest.Pipeline(settings))
    assert (result.status, result.page_views, result.bot_page_views) == ("done", 5, 2)

    chrome, iphone, googlebot, tablet, no_agent = rows(conn)
    assert chrome == chrome | {
        "is_bot": False,
        "device_type": "desktop",
        "browser": "Chrome",
        "browser_version": "120.0.0",
        "os": "Windows",
        "os_version": "10",
        "country_code": "DE",
        "country": "Germany",
        "region": "Bavaria",
        "city": "Munich",
        "referrer_host": "www.google.co.uk",
        "referrer_path": "/search",
        "referrer_category": "search",  # a medium of email does not override a search referrer
        "referrer_source": "Google",
        "search_terms": "cloudfront logs",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring sale",
        "click_id": None,
    }
    assert iphone == iphone | {
        "device_type": "mobile",
        "device_brand": "Apple",
        "device_model": "iPhone",
        "browser": "Mobile Safari",
        "os": "iOS",
        "os_version": "17.1",
        "country_code": "JP",
        "city": "Tokyo",
        "referrer_host": "m.facebook.com",
        "referrer_category": "social",
        "referrer_source": "Facebook",
        "click_id": "IwAR2x",
    }
    assert googlebot == googlebot | {
        "is_bot": True,
        "bot_name": "Googlebot",
        "device_type": "bot",
        "country_code": None,
        "referrer_category": "direct",
    }
    assert tablet == tablet | {
        "is_bot": False,
        "device_type": "tablet",
        "browser": "Chrome",
        "os": "Android",
        "country_code": "BR",
        "region": "São Paulo",
        "referrer_host": "docs.example.org",
        "referrer_category": "paid",  # an own domain, but the click was paid for
        "referrer_source": "Google Ads",
        "utm_medium": "cpc",
        "click_id": "Cj0KCQiA",
    }
    assert no_agent == no_agent | {
        "is_bot": True,
        "bot_name": None,
        "device_type": "bot",
        "country_code": "FR",
        "referrer_category": "direct",
    }


def visitor_ids(conn) -> list[int]:
    return [row[0] for row in conn.execute("SELECT visitor_id FROM page_views ORDER BY ts")]


@pytest.mark.parametrize(("mode", "distinct"), [("stable", 1), ("daily", 2)])
def test_visitor_id_mode_through_ingest(conn, env, mode, distinct):
    records = [
        logfiles.record(ts="2025-02-16 23:59:58", ip="198.51.100.20"),
        logfiles.record(ts="2025-02-16 23:59:59", ip="198.51.100.20"),
        logfiles.record(ts="2025-02-17 00:00:01", ip="198.51.100.20"),
    ]
    pipeline = ingest.Pipeline(dataclasses.replace(env, visitor_id_mode=mode))
    ingest.ingest(conn, source(logfiles.log_bytes(records)), pipeline)
    first, second, after_midnight = visitor_ids(conn)
    assert first == second
    assert len({first, after_midnight}) == distinct
