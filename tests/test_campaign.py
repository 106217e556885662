"""Campaigns: utm_* parameters and click ids, CloudFront's double encoding, and
what a campaign does to the referrer category."""

from __future__ import annotations

import pytest

from cflogs import campaign, parser
from cflogs.config import Settings
from cflogs.enrich import COLUMNS, Enricher


def utm(query: str) -> tuple:
    return campaign.parse(query)[0]


def test_utm_parameters():
    assert utm(
        "utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale"
        "&utm_term=running+shoes&utm_content=hero%20banner&page=2"
    ) == ("newsletter", "email", "spring_sale", "running shoes", "hero banner", None)


@pytest.mark.parametrize(
    ("query", "click_id", "hint", "platform"),
    [
        ("gclid=Cj0KCQiA", "Cj0KCQiA", "paid", "Google Ads"),
        ("msclkid=5f1e2d", "5f1e2d", "paid", "Microsoft Advertising"),
        ("ttclid=E.C.P.abc", "E.C.P.abc", "paid", "TikTok Ads"),
        ("li_fat_id=1a2b", "1a2b", "paid", "LinkedIn Ads"),
        ("twclid=2-abc", "2-abc", "paid", "X Ads"),
        ("wbraid=CjkK", "CjkK", "paid", "Google Ads"),
        ("fbclid=IwAR2x", "IwAR2x", "social", "Facebook"),
        # a paid id wins over fbclid, whatever the order
        ("fbclid=IwAR2x&gclid=Cj0", "Cj0", "paid", "Google Ads"),
        ("GCLID=upper", "upper", "paid", "Google Ads"),
    ],
)
def test_click_ids(query, click_id, hint, platform):
    columns, found_hint, found_platform = campaign.parse(query)
    assert (columns[5], found_hint, found_platform) == (click_id, hint, platform)


@pytest.mark.parametrize(
    ("medium", "hint"),
    [
        ("cpc", "paid"),
        ("CPC", "paid"),
        ("ppc", "paid"),
        ("cpm", "paid"),
        ("display_cpm", "paid"),
        ("paid_social", "paid"),
        ("paidsearch", "paid"),
        ("retargeting", "paid"),
        ("email", "email"),
        ("newsletter", "email"),
        ("social", "social"),
        ("organic", None),
        ("referral", None),
        ("retargeting-2", None),
    ],
)
def test_mediums(medium, hint):
    assert campaign.parse(f"utm_medium={medium}")[1] == hint


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        # CloudFront escapes the client's own % again: %2520 is the client's %20.
        ("utm_campaign=spring%2520sale", "spring sale"),
        ("utm_campaign=caf%25C3%25A9", "café"),
        ("utm_campaign=a%2526b&utm_source=x", "a&b"),
        # the client itself encoded twice: one more decoding
        ("utm_campaign=spring%252520sale", "spring sale"),
        ("utm_campaign=spring%20sale", "spring sale"),
    ],
)
def test_double_encoded_queries(logged, expected):
    assert utm(parser.decode_query(logged))[2] == expected


@pytest.mark.parametrize(
    "query", ["", "-", "page=2", "q=utm_source", "xutm_source=a", "utm_source=", "gclid="]
)
def test_nothing_to_find(query):
    assert campaign.parse(query) == campaign.NONE


def test_first_occurrence_wins():
    assert utm("utm_source=a&utm_source=b")[0] == "a"


@pytest.mark.parametrize(
    ("referrer", "query", "category", "source"),
    [
        # a paid click id or medium makes any referrer paid
        ("https://www.google.com/", "gclid=1", "paid", "Google"),
        ("", "gclid=1", "paid", "Google Ads"),
        ("https://www.example.com/", "utm_medium=cpc", "paid", None),
        ("https://m.facebook.com/", "utm_source=fb&utm_medium=paid_social", "paid", "Facebook"),
        # email and social mediums and fbclid name the channel when the referrer does not
        ("", "utm_medium=email", "email", None),
        ("https://tracking.example.net/", "utm_medium=email", "email", None),
        ("https://www.google.com/", "utm_medium=email", "search", "Google"),
        ("", "fbclid=IwAR", "social", "Facebook"),
        ("https://www.example.com/", "fbclid=IwAR", "internal", None),
        ("", "utm_medium=social", "social", None),
        # no campaign: the referrer alone
        ("", "utm_source=x", "direct", None),
    ],
)
def test_campaign_and_referrer_category(referrer, query, category, source):
    enricher = Enricher(Settings())
    values = enricher.columns("www.example.com", query, referrer, "curl/8", "-")
    row = dict(zip(COLUMNS, values, strict=True))
    assert (row["referrer_category"], row["referrer_source"]) == (category, source)
