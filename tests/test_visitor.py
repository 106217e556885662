"""Visitor ids: stable by default, a new id every UTC day in daily mode."""

from __future__ import annotations

import pytest

from cflogs.config import Settings
from cflogs.parser import LONGEST_CACHED
from cflogs.visitor import VisitorIds, visitor_ids

KEY = b"test-visitor-id-key-0123456789abcdef"
WHO = ("www.example.com", "198.51.100.7", "Mozilla/5.0 (X11; Linux x86_64)")


def test_stable_ids_ignore_the_date():
    ids = VisitorIds(KEY)
    assert ids.visitor_id(*WHO) == ids.visitor_id(*WHO, "2025-02-16")
    assert ids.visitor_id(*WHO, "2025-02-16") == ids.visitor_id(*WHO, "2025-02-17")


def test_daily_ids_change_with_the_day_only():
    daily = VisitorIds(KEY, "daily")
    monday, tuesday = daily.visitor_id(*WHO, "2025-02-17"), daily.visitor_id(*WHO, "2025-02-18")
    assert monday != tuesday
    assert daily.visitor_id(*WHO, "2025-02-17") == monday
    # another key gives other ids for the same day, and daily ids are not the stable ones
    assert VisitorIds(KEY + b"x", "daily").visitor_id(*WHO, "2025-02-17") != monday
    assert VisitorIds(KEY).visitor_id(*WHO) not in (monday, tuesday)


def test_ids_differ_by_host_ip_and_user_agent():
    ids = VisitorIds(KEY, "daily")
    base = ids.visitor_id(*WHO, "2025-02-17")
    others = [
        ids.visitor_id("shop.example.com", WHO[1], WHO[2], "2025-02-17"),
        ids.visitor_id(WHO[0], "198.51.100.8", WHO[2], "2025-02-17"),
        ids.visitor_id(WHO[0], WHO[1], WHO[2] + " ", "2025-02-17"),
    ]
    assert base not in others and len(set(others)) == 3
    assert all(-(2**63) <= value < 2**63 for value in others)


def test_daily_mode_needs_the_date():
    with pytest.raises(ValueError, match="date"):
        VisitorIds(KEY, "daily").visitor_id(*WHO)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="VISITOR_ID_MODE"):
        VisitorIds(KEY, "hourly")


def test_mode_from_the_environment():
    settings = Settings.from_env(
        {"VISITOR_ID_SECRET": KEY.decode(), "VISITOR_ID_MODE": "Daily", "CFLOGS_DATA_DIR": "/x"}
    )
    assert visitor_ids(settings).mode == "daily"
    assert visitor_ids(Settings(visitor_id_secret=KEY.decode())).mode == "stable"


def test_ids_are_cached_except_for_long_user_agents():
    ids = VisitorIds(KEY)
    long_agent = WHO[2] + " " + "x" * LONGEST_CACHED
    first = ids.visitor_id(*WHO)
    assert ids.visitor_id(WHO[0], WHO[1], long_agent) == ids.visitor_id(WHO[0], WHO[1], long_agent)
    assert ids._cached.cache_info().currsize == 1
    assert ids.visitor_id(*WHO) == first
    assert ids._cached.cache_info().hits == 1
    ids.clear()
    assert ids._cached.cache_info().currsize == 0
