"""User agents: the same answers as the user-agents library, bots by every rule."""

from __future__ import annotations

import crawleruseragents
import pytest
import user_agents

from cflogs import useragent
from tests import agents

DEVICE_TYPES = ("desktop", "mobile", "tablet", "other", "bot")
PROPERTIES = ("is_mobile", "is_tablet", "is_pc", "is_bot", "is_touch_capable", "is_email_client")
CRAWLER_INSTANCES = sorted(
    {ua for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA for ua in entry["instances"]}
)
# ua-parser-rs widens `^.{0,100}(bot|...)` to `.*`: the spider token here sits
# past the 100th character, so the legacy parser (and user-agents) says no
# device, while the Rust extractor alone would say Spider.
PAST_THE_BOUND = (
    "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.1 (KHTML, like Gecko) "
    "Chrome/21.0.1180.89 Safari/537.1; 360Spider"
)


def described(ua) -> tuple:
    return (ua.browser, ua.os, ua.device) + tuple(getattr(ua, name) for name in PROPERTIES)


@pytest.mark.parametrize("user_agent", [ua for ua, *_ in agents.ALL] + [PAST_THE_BOUND])
def test_same_answers_as_user_agents(user_agent):
    assert described(useragent.parse(user_agent)) == described(user_agents.parse(user_agent))


def test_same_answers_as_user_agents_for_the_crawler_list():
    assert len(CRAWLER_INSTANCES) > 2000
    differ = [
        ua
        for ua in CRAWLER_INSTANCES
        if described(useragent.parse(ua)) != described(user_agents.parse(ua))
    ]
    assert differ == []


def test_bounded_repetition_keeps_the_legacy_answer():
    fast = useragent.parse(PAST_THE_BOUND)
    assert fast.device.family == "Other"
    assert not fast.is_bot
    # ... and the crawler list still calls it a bot.
    assert useragent.columns(PAST_THE_BOUND)[:3] == (True, "360Spider", "bot")


@pytest.mark.parametrize(("user_agent", "device", "bot"), agents.ALL)
def test_device_type_and_bot(user_agent, device, bot):
    is_bot, name, device_type, *_ = useragent.columns(user_agent)
    assert (is_bot, name, device_type) == (bot is not None, bot, device)


def test_test_strings_cover_every_device_type():
    assert len(agents.ALL) >= 40
    assert {device for _, device, _ in agents.ALL} == set(DEVICE_TYPES)


def test_columns_of_a_browser():
    columns = dict(zip(useragent.COLUMNS, useragent.columns(agents.MOBILE[2][0]), strict=True))
    assert columns == {
        "is_bot": False,
        "bot_name": None,
        "device_type": "mobile",
        "device_brand": "Samsung",
        "device_model": "SM-S918B",
        "browser": "Samsung Internet",
        "browser_version": "24.0",
        "os": "Android",
        "os_version": "13",
    }


def test_every_crawler_list_instance_is_a_bot():
    missed = [ua for ua in CRAWLER_INSTANCES if not useragent.columns(ua)[0]]
    assert missed == []


def test_crawler_match_is_the_matched_text():
    assert useragent.crawler_match("Mozilla/5.0 (compatible; Bytespider; spider@x.com)") == (
        "Bytespider"
    )
    assert useragent.crawler_match(agents.DESKTOP[0][0]) is None


@pytest.mark.parametrize(
    ("user_agent", "name"),
    [
        ("", None),
        ("   ", None),
        # not in any list, but it links to a page about itself
        (
            "Mozilla/5.0 (compatible; ExampleFetcher/0.3; +https://fetcher.example.org/about)",
            "ExampleFetcher",
        ),
        # a tool that names only itself
        ("acme-sitecheck/2.1", "acme-sitecheck"),
    ],
)
def test_cheap_bot_signals(user_agent, name):
    assert useragent.columns(user_agent)[:3] == (True, name, "bot")


def test_unrecognised_browser_string_is_not_a_bot():
    # Mozilla-style strings that ua-parser cannot place stay human.
    assert useragent.columns("Mozilla/5.0 (Unknown; Thing) Gecko")[:3] == (False, None, "other")
