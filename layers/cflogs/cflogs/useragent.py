"""User agents: browser, OS and device exactly as the `user-agents` library says,
but fed by ua-parser 1.x's native resolver (ua-parser-rs) instead of the legacy
pure-python parser it imports (ten times slower); and bots.

A user agent is a bot when any of these says so:
- `user-agents` (ua-parser's device family `Spider`);
- the `crawler-user-agents` list (about 1,500 patterns, matched in one pass);
- an empty user agent (every browser sends one);
- `+http://` or `+https://` in it, the crawler convention for "about this bot";
- nothing in it recognised at all: no browser, OS or device family, and not a
  `Mozilla/` string (scripts and tools that name themselves only).
Results are cached by the raw string, so each distinct user agent is parsed once."""

from __future__ import annotations

import re
from functools import cache, lru_cache

import crawleruseragents
import ua_parser
import ua_parser_rs
from user_agents.parsers import (
    UserAgent,
    parse_browser,
    parse_device,
    parse_operating_system,
)

COLUMNS = (
    "is_bot",
    "bot_name",
    "device_type",
    "device_brand",
    "device_model",
    "browser",
    "browser_version",
    "os",
    "os_version",
)
CACHE_SIZE = 32768
NAME_LENGTH = 100

_BOT_URL = re.compile(r"\+https?://(?:www\.)?([^/;)\s]+)", re.IGNORECASE)
_FIRST_TOKEN = re.compile(r"[^\s/;()]+")


class ExactResolver:
    """ua-parser 1.x's native extractors with the legacy parser's exact results.

    The Rust extractors (ua-parser-rs) find the first matching regex of each
    domain in one pass, but they treat bounded repetitions of 100 or more
    (`.{0,100}`) as unbounded, so such an entry can match where Python's `re`,
    and so the legacy parser that `user-agents` uses, does not (a token after
    the 100th character). Here Rust names the index of the first candidate;
    that entry's own Python matcher confirms it and builds the result, and on a
    rare miss the entries after it are tried in Python."""

    def __init__(self, matchers: ua_parser.Matchers):
        agents, systems, devices = matchers
        self.domains = (
            (_indexed(ua_parser_rs.UserAgentExtractor, agents), agents),
            (_indexed(ua_parser_rs.OSExtractor, systems), systems),
            (
                ua_parser_rs.DeviceExtractor(
                    (m.regex, m.regex_flag, str(i), None, None) for i, m in enumerate(devices)
                ),
                devices,
            ),
        )

    def __call__(self, user_agent: str) -> tuple:
        """(ua_parser UserAgent, OS, Device), each None where nothing matched."""
        return tuple(_first(ex, matchers, user_agent) for ex, matchers in self.domains)


def _indexed(extractor, matchers):
    return extractor((m.regex, str(i), None, None, None, None) for i, m in enumerate(matchers))


def _first(extractor, matchers, user_agent: str):
    found = extractor.extract(user_agent)
    if found is None:
        return None
    for matcher in matchers[int(found.family) :]:
        result = matcher(user_agent)
        if result is not None:
            return result
    return None


@cache
def _resolver() -> ExactResolver:
    """Built on first use (about 0.3 s), over the regexes the legacy module has."""
    return ExactResolver(ua_parser.load_lazy_builtins())


class FastUserAgent(UserAgent):
    """`user_agents.parsers.UserAgent` with its browser, OS and device taken from
    ua-parser 1.x: every property (is_mobile, is_tablet, is_pc, is_bot...) is the
    library's own code on the same values the legacy parser would give."""

    def __init__(self, user_agent_string: str):
        browser, os, device = _resolver()(user_agent_string)
        self.ua_string = user_agent_string
        self.browser = (
            parse_browser(browser.family, browser.major, browser.minor, browser.patch)
            if browser
            else parse_browser("Other")
        )
        self.os = (
            parse_operating_system(os.family, os.major, os.minor, os.patch, os.patch_minor)
            if os
            else parse_operating_system("Other")
        )
        self.device = (
            parse_device(device.family, device.brand, device.model)
            if device
            else parse_device("Other", None, None)
        )


def parse(user_agent: str) -> UserAgent:
    """What `user_agents.parse` returns, only faster (and not cached: see columns)."""
    return FastUserAgent(user_agent)


@cache
def _crawlers() -> ua_parser_rs.UserAgentExtractor:
    """All crawler-user-agents patterns in one Rust extractor: it tries them
    together (about 2 us per string here, against 750 us for Python's `re` over
    the same alternation). Each pattern is wrapped in a group so that the match
    comes back as the family."""
    return ua_parser_rs.UserAgentExtractor(
        (f"({entry['pattern']})", None, None, None, None, None)
        for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA
    )


def crawler_match(user_agent: str) -> str | None:
    """The text of the first crawler-user-agents pattern that matches, or None."""
    found = _crawlers().extract(user_agent)
    return found.family if found else None


def _clean_name(text: str) -> str | None:
    name = text.strip(" /;:,()+-_.")
    return name[:NAME_LENGTH] or None


def bot_name(user_agent: str, ua: UserAgent) -> tuple[bool, str | None]:
    """(is_bot, name) by the rules in the module docstring; name where known."""
    if not user_agent.strip():
        return True, None
    crawler = crawler_match(user_agent)
    if ua.is_bot:
        if ua.browser.family != "Other":
            return True, ua.browser.family
        return True, _clean_name(crawler) if crawler else None
    if crawler:
        return True, _clean_name(crawler)
    url = _BOT_URL.search(user_agent)
    if url:
        return True, _clean_name(url.group(1))
    recognised = (ua.browser.family, ua.os.family, ua.device.family) != ("Other",) * 3
    if not recognised and not user_agent.startswith("Mozilla/"):
        token = _FIRST_TOKEN.search(user_agent)
        return True, _clean_name(token.group(0)) if token else None
    return False, None


def device_type(ua: UserAgent, is_bot: bool) -> str:
    if is_bot:
        return "bot"
    if ua.is_tablet:
        return "tablet"
    if ua.is_mobile:
        return "mobile"
    if ua.is_pc:
        return "desktop"
    return "other"


@lru_cache(maxsize=CACHE_SIZE)
def columns(user_agent: str) -> tuple:
    """The COLUMNS of one user agent, cached by the raw string."""
    ua = FastUserAgent(user_agent)
    is_bot, name = bot_name(user_agent, ua)
    return (
        is_bot,
        name,
        device_type(ua, is_bot),
        ua.device.brand,
        ua.device.model,
        ua.browser.family,
        ua.browser.version_string or None,
        ua.os.family,
        ua.os.version_string or None,
    )
