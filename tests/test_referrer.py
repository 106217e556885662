"""Referrers: every category, subdomains stripped step by step, internal hosts,
malformed values, and a Snowplow referers.yml-format file by path."""

from __future__ import annotations

import pytest

from cflogs import referrer
from cflogs.config import Settings
from cflogs.enrich import COLUMNS, Enricher

PAGE_HOST = "www.example.com"


@pytest.fixture(scope="module")
def referrers():
    return referrer.Referrers(referrer.load(), own_domains=("example.org", "Shop.Example.NET"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # search, with terms where the referrer still carries them
        (
            "https://www.google.co.uk/search?q=café au lait&hl=en",
            ("www.google.co.uk", "/search", "search", "Google", "café au lait"),
        ),
        ("https://www.google.com/", ("www.google.com", "/", "search", "Google", None)),
        (
            "https://www.google.com.br/url?q=",
            ("www.google.com.br", "/url", "search", "Google", None),
        ),
        (
            "https://www.bing.com/search?q=cloudfront+logs",
            ("www.bing.com", "/search", "search", "Bing", "cloudfront logs"),
        ),
        ("https://duckduckgo.com/", ("duckduckgo.com", "/", "search", "DuckDuckGo", None)),
        (
            "https://yandex.ru/search/?text=логи",
            ("yandex.ru", "/search/", "search", "Yandex", "логи"),
        ),
        (
            "https://search.yahoo.co.jp/search?p=ログ",
            ("search.yahoo.co.jp", "/search", "search", "Yahoo! Japan", "ログ"),
        ),
        (
            "android-app://com.google.android.googlequicksearchbox/",
            ("com.google.android.googlequicksearchbox", "/", "search", "Google", None),
        ),
        # social, subdomains stripped one label at a time
        ("https://m.facebook.com/", ("m.facebook.com", "/", "social", "Facebook", None)),
        (
            "https://l.facebook.com/l.php?u=x",
            ("l.facebook.com", "/l.php", "social", "Facebook", None),
        ),
        ("https://t.co/abc", ("t.co", "/abc", "social", "X (Twitter)", None)),
        (
            "https://news.ycombinator.com/item?id=1",
            ("news.ycombinator.com", "/item", "social", "Hacker News", None),
        ),
        ("https://old.reddit.com/r/aws/", ("old.reddit.com", "/r/aws/", "social", "Reddit", None)),
        (
            "https://www.pinterest.de/pin/1/",
            ("www.pinterest.de", "/pin/1/", "social", "Pinterest", None),
        ),
        # email, the exact host beats the parent domain's entry
        (
            "https://mail.google.com/mail/u/0/",
            ("mail.google.com", "/mail/u/0/", "email", "Gmail", None),
        ),
        (
            "android-app://com.google.android.gm/",
            ("com.google.android.gm", "/", "email", "Gmail", None),
        ),
        ("https://outlook.live.com/", ("outlook.live.com", "/", "email", "Outlook.com", None)),
        # a domain with a path matches only under that path
        (
            "https://www.icloud.com/mail/",
            ("www.icloud.com", "/mail/", "email", "iCloud Mail", None),
        ),
        ("https://www.icloud.com/photos/", ("www.icloud.com", "/photos/", "referral", None, None)),
        # ai assistants
        ("https://chatgpt.com/", ("chatgpt.com", "/", "ai", "ChatGPT", None)),
        (
            "https://www.perplexity.ai/search?q=cdn+logs",
            ("www.perplexity.ai", "/search", "ai", "Perplexity", "cdn logs"),
        ),
        ("https://gemini.google.com/app", ("gemini.google.com", "/app", "ai", "Gemini", None)),
        ("https://claude.ai/chat/1", ("claude.ai", "/chat/1", "ai", "Claude", None)),
        # ad networks
        (
            "https://www.googleadservices.com/pagead/aclk",
            ("www.googleadservices.com", "/pagead/aclk", "paid", "Google Ads", None),
        ),
        # named and unnamed other sites
        (
            "https://docs.google.com/document/d/1",
            ("docs.google.com", "/document/d/1", "referral", "Google Docs", None),
        ),
        (
            "https://blog.example.net/post?id=3",
            ("blog.example.net", "/post", "referral", None, None),
        ),
        ("http://localhost:8080/x", ("localhost", "/x", "referral", None, None)),
        (
            "www.bing.com/search?q=no+scheme",
            ("www.bing.com", "/search", "search", "Bing", "no scheme"),
        ),
        # internal: the page's host (with or without www), own domains and their subdomains
        (
            "https://www.example.com/pricing",
            ("www.example.com", "/pricing", "internal", None, None),
        ),
        ("https://EXAMPLE.com/", ("example.com", "/", "internal", None, None)),
        ("https://docs.example.org/a", ("docs.example.org", "/a", "internal", None, None)),
        ("https://shop.example.net/cart", ("shop.example.net", "/cart", "internal", None, None)),
        # direct: nothing, '-', or nothing that names a host
        ("", (None, None, "direct", None, None)),
        ("-", (None, None, "direct", None, None)),
        ("http://[::1", (None, None, "direct", None, None)),
        ("http://example.com:port/", (None, None, "direct", None, None)),
        ("not a url", (None, None, "direct", None, None)),
        ("/relative/path", (None, None, "direct", None, None)),
        ("https://", (None, None, "direct", None, None)),
    ],
)
def test_referrer(referrers, value, expected):
    assert referrers.columns(value, PAGE_HOST) == expected


def test_near_misses_are_not_sources(referrers):
    # Only a country ending may follow a `name.*` entry, and t.co is not *.co.
    assert referrers.columns("https://google.example.com/", PAGE_HOST)[2] == "referral"
    assert referrers.columns("https://googleblog.com/", PAGE_HOST)[2] == "referral"
    assert referrers.columns("https://st.co/", PAGE_HOST)[2] == "referral"


def test_curated_list_is_a_few_hundred_domains():
    sources = referrer.load()
    domains = [d for entries in sources.values() for s in entries.values() for d in s["domains"]]
    assert len(domains) >= 300
    assert set(sources) <= set(referrer.CATEGORIES)


SNOWPLOW_STYLE = """\
unknown:
  Google Product Search:
    domains:
      - google.com/products
search:
  Example Search:
    parameters:
      - query
      - q
    domains:
      - search.example.net
social:
  Example Social:
    domains:
      - friends.example.net/
email:
  Example Mail:
    domains:
      - webmail.example.net
"""


def test_snowplow_format_file_by_path(tmp_path):
    path = tmp_path / "referers.yml"
    path.write_text(SNOWPLOW_STYLE)
    enricher = Enricher(Settings(referers_yml=str(path)))

    def columns(value):
        row = dict(zip(COLUMNS, enricher.columns(PAGE_HOST, "", value, "curl/8", "-"), strict=True))
        return tuple(row[name] for name in referrer.COLUMNS[2:])

    assert columns("https://m.search.example.net/?q=&query=tea") == (
        "search",
        "Example Search",
        "tea",
    )
    assert columns("https://friends.example.net/feed") == ("social", "Example Social", None)
    assert columns("https://webmail.example.net/") == ("email", "Example Mail", None)
    assert columns("https://www.google.com/products/x") == (
        "referral",
        "Google Product Search",
        None,
    )
    # that file replaces the package's list
    assert columns("https://www.google.com/") == ("referral", None, None)


def test_curated_list_names_each_domain_once():
    sources = referrer.load()
    domains = [
        d.lower().removeprefix("www.")
        for entries in sources.values()
        for s in entries.values()
        for d in s["domains"]
    ]
    assert sorted(d for d in set(domains) if domains.count(d) > 1) == []
