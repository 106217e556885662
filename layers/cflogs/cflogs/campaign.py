"""Campaigns: utm_* parameters and ad click ids from a page's query string, and
what they say about how the visitor came.

A paid click id (gclid, msclkid, ttclid...) or a paid utm_medium (cpc, ppc,
paid_social, retargeting...) makes the page view `paid`, whatever its referrer.
A medium of email or social, or fbclid, names the channel only when the referrer
does not (direct or an unknown site): mail apps and social apps often send none."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote

COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "click_id")
UTM = COLUMNS[:5]
VALUE_LENGTH = 500

# Click id parameter -> (platform, category it implies), in order of preference.
CLICK_IDS = {
    "gclid": ("Google Ads", "paid"),
    "gbraid": ("Google Ads", "paid"),
    "wbraid": ("Google Ads", "paid"),
    "dclid": ("Google Display & Video 360", "paid"),
    "msclkid": ("Microsoft Advertising", "paid"),
    "ttclid": ("TikTok Ads", "paid"),
    "li_fat_id": ("LinkedIn Ads", "paid"),
    "twclid": ("X Ads", "paid"),
    "yclid": ("Yandex Direct", "paid"),
    "epik": ("Pinterest Ads", "paid"),
    "sccid": ("Snapchat Ads", "paid"),
    "rdt_cid": ("Reddit Ads", "paid"),
    # Facebook adds fbclid to every outbound link, ads or not.
    "fbclid": ("Facebook", "social"),
}
PAID_MEDIUM = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$", re.IGNORECASE)
EMAIL_MEDIUMS = frozenset({"email", "e-mail", "e_mail", "mail", "newsletter"})
SOCIAL_MEDIUMS = frozenset({"social", "social-network", "social-media", "social_media", "sm"})
NONE = ((None,) * len(COLUMNS), None, None)

_MARKER = re.compile(
    r"(?:^|[&;])(?:utm_|" + "|".join(CLICK_IDS) + ")",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


def parse(query: str) -> tuple:
    """(COLUMNS, category hint or None, platform or None) of a query string as
    CloudFront's extra encoding left it decoded (the client's own intact)."""
    if not query or not _MARKER.search(query):
        return NONE
    params: dict[str, str] = {}
    for name, value in parse_qsl(query):
        name = name.lower()
        value = value.strip()
        if value and name not in params:
            params[name] = value
    click_name = next((name for name in CLICK_IDS if name in params), None)
    columns = tuple(_value(params.get(name)) for name in UTM) + (
        params[click_name][:200] if click_name else None,
    )
    platform, hint = CLICK_IDS[click_name] if click_name else (None, None)
    medium = (columns[1] or "").lower()
    if hint != "paid" and medium:
        if PAID_MEDIUM.match(medium):
            hint = "paid"
        elif medium in EMAIL_MEDIUMS:
            hint, platform = "email", None
        elif medium in SOCIAL_MEDIUMS and hint is None:
            hint = "social"
    return columns, hint, platform


def _value(value: str | None) -> str | None:
    if value is None:
        return None
    if "%" in value and _PERCENT.search(value):
        value = unquote(value).strip()  # the client encoded it twice
    return value[:VALUE_LENGTH] or None


def apply(referrer: tuple, hint: str | None, platform: str | None) -> tuple:
    """The referrer columns with the campaign's channel applied (see module doc)."""
    if hint is None:
        return referrer
    host, path, category, source, terms = referrer
    if hint == "paid" or category in ("direct", "referral"):
        return (host, path, hint, source or platform, terms)
    return referrer
