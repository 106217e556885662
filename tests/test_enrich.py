"""The Enricher as ingest uses it: one tuple of COLUMNS per page view."""

from __future__ import annotations

from cflogs import enrich
from cflogs.config import Settings
from cflogs.enrich import COLUMNS, Enricher
from cflogs.parser import LONGEST_CACHED
from tests import agents

HOST = "www.example.com"


def test_columns_in_order():
    enricher = Enricher(Settings(own_domains=("example.org",)))
    values = enricher.columns(
        HOST,
        "utm_source=hn&utm_campaign=launch&msclkid=42",
        "https://www.bing.com/search?q=cdn+analytics",
        agents.TABLET[0][0],
        "192.0.2.1",
    )
    assert dict(zip(COLUMNS, values, strict=True)) == {
        "is_bot": False,
        "bot_name": None,
        "device_type": "tablet",
        "device_brand": "Apple",
        "device_model": "iPad",
        "browser": "Mobile Safari",
        "browser_version": "17.4.1",
        "os": "iOS",
        "os_version": "17.4.1",
        "country_code": None,
        "country": None,
        "region": None,
        "city": None,
        "referrer_host": "www.bing.com",
        "referrer_path": "/search",
        "referrer_category": "paid",
        "referrer_source": "Bing",
        "search_terms": "cdn analytics",
        "utm_source": "hn",
        "utm_medium": None,
        "utm_campaign": "launch",
        "utm_term": None,
        "utm_content": None,
        "click_id": "42",
    }


def test_is_bot():
    enricher = Enricher(Settings())
    assert enricher.is_bot(agents.BOTS[0][0])
    assert not enricher.is_bot(agents.MOBILE[0][0])


def test_lookups_are_cached_by_the_logged_values():
    enricher = Enricher(Settings())
    logged = agents.DESKTOP[1][0].replace(" ", "%20")
    first = enricher.agent(logged)
    assert first[0] == agents.DESKTOP[1][0]
    assert enricher.agent(logged) is first
    source = enricher.source(HOST, "https://m.facebook.com/story", "utm_source=a%2520b")
    referrer_columns = ("m.facebook.com", "/story", "social", "Facebook", None)
    campaign_columns = ("a b", None, None, None, None, None)
    assert source == ("utm_source=a%20b", referrer_columns + campaign_columns)
    assert enricher.source(HOST, "https://m.facebook.com/story", "utm_source=a%2520b") is source
    # the page's host is part of the key: the same referrer is internal on one site only
    own_page = f"https://{HOST}/docs"
    assert enricher.source(HOST, own_page, "-")[1][2] == "internal"
    assert enricher.source("other.example.com", own_page, "-")[1][2] == "referral"
    assert (len(enricher.agents), len(enricher.sources)) == (1, 3)


def test_long_inputs_bypass_the_caches():
    enricher = Enricher(Settings())
    padding = "x" * LONGEST_CACHED
    long_agent = agents.DESKTOP[0][0] + " " + padding
    values = enricher.columns(HOST, "utm_source=a&pad=" + padding, "-", long_agent, "-")
    assert (enricher.agents, enricher.sources) == ({}, {})
    assert values[COLUMNS.index("browser")] == "Chrome"
    assert values[COLUMNS.index("utm_source")] == "a"


def test_a_full_cache_starts_again(monkeypatch):
    monkeypatch.setattr(enrich, "CACHE_ENTRIES", 3)
    enricher = Enricher(Settings())
    for n in range(4):
        enricher.agent(f"probe/{n}")
    assert list(enricher.agents) == ["probe/3"]
