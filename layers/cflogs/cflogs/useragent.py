"""User agents: browser, OS and device exactly as the `user-agents` library says,
but fed by ua-parser 1.x's native resolver (ua-parser-rs) instead of the legacy
pure-python parser it imports (ten times slower); and bots.

A user agent is a bot when any of these says so:
- the `crawler-user-agents` list (about 1,500 patterns, matched in one pass);
- `user-agents` (ua-parser's device family `Spider`);
- an empty user agent (every browser sends one);
- `+http://` or `+https://` in it, the crawler convention for "about this bot";
- nothing in it recognised at all: no browser, OS or device family, and not a
  `Mozilla/` string (scripts and tools that name themselves only).
Nothing here is cached: enrich.Enricher caches columns() by the logged string."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

import crawleruseragents
import ua_parser
import ua_parser_rs

if TYPE_CHECKING:
    from user_agents.parsers import UserAgent

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
NAME_LENGTH = 100

_URL = re.compile(r"https?://(?:www\.)?([^/;)\s]+)", re.IGNORECASE)
_FIRST_TOKEN = re.compile(r"[^\s/;()]+")
_COMPATIBLE = re.compile(r"compatible;\s*(?!MSIE)([^;/()+]+)")
_NAME = re.compile(rf"[A-Za-z0-9][\w .!@-]{{1,{NAME_LENGTH}}}")
_GENERIC_NAMES = frozenset({"bot", "bots", "crawler", "spider", "robot", "webcrawler", "other"})
# ua-parser matcher fields, in the order ua-parser-rs extractors take them
_UA_FIELDS = ("regex", "family", "major", "minor", "patch", "patch_minor")
_DEVICE_FIELDS = ("regex", "regex_flag", "family", "brand", "model")
# ua-parser-rs widens `{m,n}` with n of 100 or more to unbounded
_UNBOUNDED_IN_RUST = re.compile(r"\{\d*,?\d{3,}\}")
_SENTINEL = "\x00"


class _Domain:
    """One ua-parser domain (user agents, OS or devices) from entry `start` on.

    The Rust extractor (ua-parser-rs) finds the first matching regex in one pass,
    but treats bounded repetitions of 100 or more (`.{0,100}`) as unbounded, so
    such an entry can match where Python's `re`, and so the legacy parser that
    `user-agents` uses, does not (a token after the 100th character). Those
    entries answer with their index instead of a result; the entry's own Python
    matcher confirms it, and on a miss the same search goes on from the next entry
    with an extractor over the rest of the list (built once, when first needed)."""

    def __init__(self, kind, matchers, fields, start: int = 0):
        self.kind, self.matchers, self.fields = kind, matchers, fields
        self.start = start
        self.extractor = kind([self._entry(i) for i in range(start, len(matchers))])
        self._rest: dict[int, _Domain] = {}

    def _entry(self, i: int) -> tuple:
        matcher = self.matchers[i]
        entry = [getattr(matcher, name) for name in self.fields]
        if _UNBOUNDED_IN_RUST.search(matcher.regex):
            family = self.fields.index("family")
            entry[family + 1 :] = [None] * (len(self.fields) - family - 1)
            entry[family] = f"{_SENTINEL}{i}"
        return tuple(entry)

    def resolve(self, user_agent: str):
        """The first match: the extractor's result or the legacy matcher's, either
        with the fields (family, major... or family, brand, model) as attributes."""
        found = self.extractor.extract(user_agent)
        if found is None or not found.family.startswith(_SENTINEL):
            return found
        index = int(found.family[1:])
        try:
            confirmed = self.matchers[index](user_agent)
        except ValueError:  # the regex matched, its family came out empty: no match
            confirmed = None
        if confirmed is not None:
            return confirmed
        if index + 1 >= len(self.matchers):
            return None
        rest = self._rest.get(index)
        if rest is None:
            rest = self._rest[index] = _Domain(self.kind, self.matchers, self.fields, index + 1)
        return rest.resolve(user_agent)


class ExactResolver:
    """ua-parser 1.x's native extractors with the legacy parser's exact results
    (see _Domain for how the Rust extractors' one difference is corrected)."""

    def __init__(self, matchers: ua_parser.Matchers):
        agents, systems, devices = matchers
        self.domains = (
            _Domain(ua_parser_rs.UserAgentExtractor, agents, _UA_FIELDS),
            _Domain(ua_parser_rs.OSExtractor, systems, _UA_FIELDS),
            _Domain(ua_parser_rs.DeviceExtractor, devices, _DEVICE_FIELDS),
        )

    def __call__(self, user_agent: str) -> tuple:
        """(browser, OS, device) as _Domain.resolve gives them, each None where
        nothing matched."""
        browser, system, device = self.domains
        return browser.resolve(user_agent), system.resolve(user_agent), device.resolve(user_agent)


@cache
def _resolver() -> ExactResolver:
    """Built on first use (about 0.3 s), over the regexes the legacy module has."""
    return ExactResolver(ua_parser.load_lazy_builtins())


@cache
def _user_agent_class() -> type[UserAgent]:
    """`user_agents.parsers.UserAgent` with its browser, OS and device taken from
    ExactResolver: every property (is_mobile, is_tablet, is_pc, is_bot...) is the
    library's own code on the values the legacy parser would give. Defined on
    first use: importing user_agents compiles the legacy parser's regexes
    (0.2 s or more), which a cold start that ingests nothing need not pay."""
    from user_agents import parsers

    class FastUserAgent(parsers.UserAgent):
        def __init__(self, user_agent_string: str):
            browser, system, device = _resolver()(user_agent_string)
            self.ua_string = user_agent_string
            self.browser = (
                parsers.parse_browser(browser.family, browser.major, browser.minor, browser.patch)
                if browser
                else parsers.parse_browser("Other")
            )
            self.os = (
                parsers.parse_operating_system(
                    system.family, system.major, system.minor, system.patch, system.patch_minor
                )
                if system
                else parsers.parse_operating_system("Other")
            )
            self.device = (
                parsers.parse_device(device.family, device.brand, device.model)
                if device
                else parsers.parse_device("Other", None, None)
            )

    return FastUserAgent


def parse(user_agent: str) -> UserAgent:
    """What `user_agents.parse` returns, only faster."""
    return _user_agent_class()(user_agent)


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


def bot_name(user_agent: str, ua: UserAgent) -> tuple[bool, str | None]:
    """(is_bot, name) by the rules in the module docstring; name where known."""
    if not user_agent.strip():
        return True, None
    crawler = crawler_match(user_agent)
    if not (
        ua.is_bot
        or crawler
        or "+http" in user_agent
        or (
            (ua.browser.family, ua.os.family, ua.device.family) == ("Other", "Other", "Other")
            and not user_agent.startswith("Mozilla/")
        )
    ):
        return False, None
    return True, _name(user_agent, ua, crawler)


def _name(user_agent: str, ua: UserAgent, crawler: str | None) -> str | None:
    """The first plausible name: the crawler pattern's match, ua-parser's spider
    family, the `compatible; Name/1.0` token, the leading product token of a
    non-browser string, or the host of a URL in it."""
    compatible = _COMPATIBLE.search(user_agent)
    url = _URL.search(user_agent)
    token = _FIRST_TOKEN.match(user_agent)
    for candidate in (
        crawler,
        ua.browser.family if ua.is_bot else None,
        compatible.group(1) if compatible else None,
        token.group(0) if token and token.group(0) != "Mozilla" else None,
        url.group(1) if url else None,
    ):
        name = (candidate or "").strip(" /;:,()+-_.")
        if _NAME.fullmatch(name) and name.lower() not in _GENERIC_NAMES:
            return name
    return None


def device_type(ua: UserAgent, is_bot: bool) -> str:
    """desktop, mobile, tablet, bot or other, by user-agents' own tests."""
    if is_bot:
        return "bot"
    if ua.is_tablet:
        return "tablet"
    if ua.is_mobile:
        return "mobile"
    if ua.is_pc:
        return "desktop"
    return "other"


def columns(user_agent: str) -> tuple:
    """The COLUMNS of one user agent."""
    ua = parse(user_agent)
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
