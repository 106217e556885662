"""Enrichment of page views: who (user agent, bot), where (GeoIP), how they came
(referrer, campaign). Every lookup is cached by its raw input."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

from user_agents import parse as parse_user_agent

from .config import Settings

# The page_views columns an Enricher fills, in this order.
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
    "country_code",
    "country",
    "region",
    "city",
    "referrer_host",
    "referrer_path",
    "referrer_category",
    "referrer_source",
    "search_terms",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "click_id",
)


@lru_cache(maxsize=65536)
def user_agent_columns(user_agent: str) -> tuple:
    """is_bot, bot_name, device_type, device_brand, device_model, browser,
    browser_version, os, os_version."""
    ua = parse_user_agent(user_agent)
    if ua.is_bot:
        device = "bot"
    elif ua.is_tablet:
        device = "tablet"
    elif ua.is_mobile:
        device = "mobile"
    elif ua.is_pc:
        device = "desktop"
    else:
        device = "other"
    return (
        ua.is_bot,
        ua.browser.family if ua.is_bot else None,
        device,
        ua.device.brand,
        ua.device.model,
        ua.browser.family,
        ua.browser.version_string or None,
        ua.os.family,
        ua.os.version_string or None,
    )


@lru_cache(maxsize=65536)
def referrer_columns(referrer: str, host: str) -> tuple:
    """referrer_host, referrer_path, referrer_category, referrer_source, search_terms."""
    if not referrer:
        return (None, None, "direct", None, None)
    try:
        parts = urlsplit(referrer)
    except ValueError:
        return (None, None, "referral", None, None)
    ref_host = (parts.hostname or "").lower() or None
    category = "internal" if ref_host == host.lower() else "referral"
    return (ref_host, parts.path or None, category, None, None)


@lru_cache(maxsize=65536)
def campaign_columns(query: str) -> tuple:
    """utm_source, utm_medium, utm_campaign, utm_term, utm_content, click_id."""
    if not query or "=" not in query:
        return (None,) * 6
    params = parse_qs(query)

    def first(name: str) -> str | None:
        values = params.get(name)
        return values[0] if values else None

    return (
        first("utm_source"),
        first("utm_medium"),
        first("utm_campaign"),
        first("utm_term"),
        first("utm_content"),
        first("gclid") or first("fbclid") or first("msclkid"),
    )


class Enricher:
    def __init__(self, settings: Settings):
        self.settings = settings

    def is_bot(self, user_agent: str) -> bool:
        return user_agent_columns(user_agent)[0]

    def columns(self, host: str, query: str, referrer: str, user_agent: str, ip: str) -> tuple:
        """The COLUMNS of one page view; inputs already decoded (DESIGN.md step 3)."""
        return (
            user_agent_columns(user_agent)
            + (None, None, None, None)
            + referrer_columns(referrer, host)
            + campaign_columns(query)
        )
