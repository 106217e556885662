"""Realistic CloudFront standard logs with their ground truth, for demos, tests and
benchmarks. Everything comes from one seed: the same arguments give the same bytes.

Visitors come from documentation and private address ranges only (10.0.0.0/8 and
2001:db8::/32 for people, 10.250.0.0/15 for crawlers); the country a visitor is from
shows only in its address block, its edge location and its search engine's domain."""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
from bisect import bisect
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from random import Random
from statistics import median
from urllib.parse import quote

from .parser import LEGACY_COUNTS, LEGACY_FIELDS, V2_FIELDS

DEFAULT_DISTRIBUTION = "E2EXAMPLE8DEMO"
DEFAULT_HOSTS = ("www.example.com", "docs.example.com")
DEFAULT_START = date(2025, 6, 2)  # a Monday; never the wall clock (same seed, same bytes)
CLOUDFRONT_HOST = "d1234abcdexmpl.cloudfront.net"
SESSION_TIMEOUT = 30 * 60
PAGE_EXTENSIONS = ("html", "htm", "php", "asp", "aspx", "jsp", "shtml")
LAYOUTS = LEGACY_COUNTS + (len(V2_FIELDS),)
GROUND_TRUTH_FILE = "ground-truth.json"

# ---------------------------------------------------------------- what the pipeline sees


def is_page_view(method: str, status: int, content_type: str, path: str) -> bool:
    """The page view rule (docs/architecture.md), written apart (not imported from the pipeline,
    so that the ground truth checks it): a GET answered 2xx or 304 with HTML, by
    content type when the record has one, else by the path."""
    if method != "GET" or not (200 <= status < 300 or status == 304):
        return False
    if content_type != "-":
        return content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")
    last = path.rsplit("/", 1)[-1]
    return "." not in last or last.rsplit(".", 1)[1].lower() in PAGE_EXTENSIONS


def split_sessions(times: list[int], timeout: int = SESSION_TIMEOUT) -> list[list[int]]:
    """One visitor's page view times (seconds, any order) cut into sessions: a gap
    of `timeout` or more starts a new one."""
    sessions: list[list[int]] = []
    for moment in sorted(times):
        if not sessions or moment - sessions[-1][-1] >= timeout:
            sessions.append([])
        sessions[-1].append(moment)
    return sessions


# ---------------------------------------------------------------- encoding

_UNSAFE = "<>\"#%{}|\\^~[]`' "
_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) not in _UNSAFE)


def cloudfront_encode(text: str) -> str:
    """Percent-encode as CloudFront writes free text: space, the characters above and
    anything outside printable ASCII. A client's own `%XX` thus becomes `%25XX`."""
    if text == "":
        return "-"
    # quote() never encodes "~"; CloudFront does.
    return quote(text, safe=_SAFE).replace("~", "%7E")


# ---------------------------------------------------------------- the world

# code, share of visitors, UTC offset (hours), Google domain, edge locations
COUNTRIES = (
    (
        "US",
        30,
        -5,
        "www.google.com",
        (
            "IAD89-P1",
            "IAD61-P2",
            "ORD52-C1",
            "DFW56-P3",
            "SEA19-C2",
            "LAX50-P1",
            "ATL56-C2",
            "JFK50-P2",
        ),
    ),
    ("GB", 8, 0, "www.google.co.uk", ("LHR61-P3", "LHR50-C1", "MAN51-P1")),
    ("DE", 8, 1, "www.google.de", ("FRA56-P5", "FRA60-P2", "MUC50-P1", "HAM50-C1")),
    ("IN", 7, 5, "www.google.co.in", ("BOM78-P1", "DEL54-C1", "MAA51-P2", "BLR50-C1")),
    ("FR", 5, 1, "www.google.fr", ("CDG50-C1", "CDG52-P2", "MRS52-P1")),
    ("CA", 4, -5, "www.google.ca", ("YTO50-C1", "YUL62-C2")),
    ("BR", 4, -3, "www.google.com.br", ("GRU3-C1", "GIG51-P1")),
    ("JP", 3, 9, "www.google.co.jp", ("NRT57-P2", "KIX56-P1")),
    ("AU", 3, 10, "www.google.com.au", ("SYD62-P1", "MEL50-C2")),
    ("NL", 3, 1, "www.google.nl", ("AMS58-P2", "AMS1-C1")),
    ("ES", 3, 1, "www.google.es", ("MAD53-P1", "BCN50-C1")),
    ("IT", 2, 1, "www.google.it", ("MXP64-C2", "FCO50-P1")),
    ("PL", 2, 1, "www.google.pl", ("WAW51-P2",)),
    ("SE", 2, 1, "www.google.se", ("ARN56-P1",)),
    ("SG", 2, 8, "www.google.com.sg", ("SIN2-P1", "SIN52-C1")),
    ("KR", 2, 9, "www.google.co.kr", ("ICN57-P1",)),
    ("MX", 2, -6, "www.google.com.mx", ("QRO51-P1",)),
    ("ZA", 1, 2, "www.google.co.za", ("JNB50-C1",)),
    ("ID", 2, 7, "www.google.co.id", ("CGK51-P1",)),
    ("NG", 1, 1, "www.google.com.ng", ("LOS50-C1",)),
)
# Relative activity by local hour of day.
LOCAL_HOURS = (
    0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.25, 0.5, 0.8, 1.0, 1.1, 1.15,
    1.1, 1.1, 1.15, 1.1, 1.0, 0.9, 0.85, 0.9, 0.95, 0.85, 0.6, 0.4,
)  # fmt: skip
WEEKEND = 0.7

WORDS_A = (
    "fast", "static", "serverless", "secure", "global", "cheap", "private", "simple",
    "modern", "resilient", "scalable", "minimal",
)  # fmt: skip
WORDS_B = (
    "websites", "caching", "analytics", "logging", "deployments", "redirects", "headers",
    "images", "fonts", "edge-functions", "origins", "invalidations", "certificates", "apis",
)  # fmt: skip
DOC_SECTIONS = ("getting-started", "guides", "reference", "api", "faq", "integrations")
DOC_PAGES = ("overview", "install", "configure", "deploy", "monitoring", "limits", "upgrade")

SEARCH_TERMS = (
    "cloudfront access logs", "serverless analytics", "privacy friendly analytics",
    "cloudfront log format", "static site analytics without cookies", "s3 access logs parser",
    "web analytics gdpr", "cloudfront cache hit ratio", "lambda postgres", "example pricing",
)  # fmt: skip
CAMPAIGNS = (
    ("newsletter", "email", "june digest"),
    ("newsletter", "email", "product update"),
    ("linkedin", "social", "launch week"),
    ("google", "cpc", "brand search"),
    ("bing", "cpc", "brand search"),
    ("partner-blog", "referral", "spring promo"),
    ("twitter", "social", "launch week"),
)
REFERRAL_SITES = (
    "https://github.com/example-org/awesome-analytics",
    "https://dev.to/someone/privacy-first-analytics-4k2j",
    "https://medium.com/@writer/logs-are-all-you-need-1a2b3c",
    "https://stackoverflow.com/questions/41234567/how-to-read-cloudfront-logs",
    "https://www.producthunt.com/posts/example",
    "https://alternativeto.net/software/google-analytics/",
    "https://en.wikipedia.org/wiki/Web_analytics",
)
AI_SITES = (
    "https://chatgpt.com/",
    "https://www.perplexity.ai/",
    "https://gemini.google.com/",
    "https://claude.ai/",
    "https://copilot.microsoft.com/",
)
SOCIAL = (
    "https://m.facebook.com/",
    "https://l.facebook.com/",
    "https://t.co/{code}",
    "https://www.reddit.com/r/aws/comments/{code}/cloudfront_logs_without_athena/",
    "https://news.ycombinator.com/item?id={number}",
    "https://www.linkedin.com/",
    "https://lnkd.in/{code}",
)
WEBMAIL = ("https://mail.google.com/", "https://outlook.live.com/", "https://mail.yahoo.com/")


def _chrome_build(rng: Random, major: int) -> str:
    return f"{major}.0.{6000 + (major - 110) * 70 + rng.randrange(60)}.{rng.randrange(250)}"


def _chrome_major(rng: Random) -> int:
    return 131 - min(int(rng.expovariate(0.45)), 14)


def _ios(rng: Random) -> tuple[str, str]:
    major = rng.choice((16, 17, 17, 17, 18, 18, 18, 18))
    minor = rng.randrange(7)
    patch = rng.choice(("", "", "", "_1", "_2"))
    return f"{major}_{minor}{patch}", f"{major}.{minor}"


ANDROID_PHONES = (
    "Pixel 7", "Pixel 8", "Pixel 8 Pro", "Pixel 9", "SM-S918B", "SM-S921B", "SM-A546B",
    "SM-A155F", "SM-G991B", "2201116SG", "23049PCD8G", "CPH2451", "moto g54 5G", "RMX3771",
)  # fmt: skip
ANDROID_TABLETS = ("SM-X710", "SM-X200", "SM-T220", "Lenovo TB-X606F", "SM-X910")


def _human_agent(rng: Random) -> tuple[str, str]:
    """A browser user agent and its device type (desktop, mobile, tablet)."""
    roll = rng.random()
    win = "Windows NT 10.0; Win64; x64"
    mac = "Macintosh; Intel Mac OS X 10_15_7"
    webkit = "AppleWebKit/537.36 (KHTML, like Gecko)"
    if roll < 0.25:
        return (
            f"Mozilla/5.0 ({win}) {webkit} Chrome/{_chrome_major(rng)}.0.0.0 Safari/537.36",
            "desktop",
        )
    if roll < 0.33:
        return (
            f"Mozilla/5.0 ({mac}) {webkit} Chrome/{_chrome_major(rng)}.0.0.0 Safari/537.36",
            "desktop",
        )
    if roll < 0.35:
        system = rng.choice(("X11; Linux x86_64", "X11; CrOS x86_64 14541.0.0"))
        return (
            f"Mozilla/5.0 ({system}) {webkit} Chrome/{_chrome_major(rng)}.0.0.0 Safari/537.36",
            "desktop",
        )
    if roll < 0.42:
        major = _chrome_major(rng)
        return (
            f"Mozilla/5.0 ({win}) {webkit} Chrome/{major}.0.0.0 Safari/537.36 "
            f"Edg/{_chrome_build(rng, major)}",
            "desktop",
        )
    if roll < 0.48:
        version = rng.randrange(115, 134)
        system = rng.choice(
            (win, win, "Macintosh; Intel Mac OS X 10.15", "X11; Ubuntu; Linux x86_64",
             "X11; Linux x86_64")
        )  # fmt: skip
        return (
            f"Mozilla/5.0 ({system}; rv:{version}.0) Gecko/20100101 Firefox/{version}.0",
            "desktop",
        )
    if roll < 0.54:
        version = rng.choice(("16.6", "17.4.1", "17.5", "17.6", "18.0", "18.1", "18.1.1"))
        return (
            f"Mozilla/5.0 ({mac}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{version} "
            "Safari/605.1.15",
            "desktop",
        )
    if roll < 0.55:
        major = _chrome_major(rng)
        return (
            f"Mozilla/5.0 ({win}) {webkit} Chrome/{major}.0.0.0 Safari/537.36 "
            f"OPR/{major - 15}.0.0.0",
            "desktop",
        )
    if roll < 0.73:
        os_version, version = _ios(rng)
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_version} like Mac OS X) AppleWebKit/605.1.15"
            f" (KHTML, like Gecko) Version/{version} Mobile/15E148 Safari/604.1",
            "mobile",
        )
    if roll < 0.76:
        os_version, _ = _ios(rng)
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_version} like Mac OS X) AppleWebKit/605.1.15"
            f" (KHTML, like Gecko) CriOS/{_chrome_build(rng, _chrome_major(rng))} Mobile/15E148"
            " Safari/604.1",
            "mobile",
        )
    if roll < 0.785:  # an app's web view: full Chrome version and the Android build
        release = rng.choice(("TP1A", "UP1A", "AP2A"))
        build = f"{release}.{rng.randrange(220000, 240999)}.0{rng.randrange(10, 40)}"
        return (
            f"Mozilla/5.0 (Linux; Android {rng.choice((12, 13, 14))}; "
            f"{rng.choice(ANDROID_PHONES)} Build/{build}; wv) {webkit} Version/4.0 "
            f"Chrome/{_chrome_build(rng, _chrome_major(rng))} Mobile Safari/537.36",
            "mobile",
        )
    if roll < 0.88:
        android = rng.choice((10, 10, 10, 13, 14))
        # Chrome's reduced user agent hides the model ("K") on Android 10.
        model = "K" if android == 10 else rng.choice(ANDROID_PHONES)
        return (
            f"Mozilla/5.0 (Linux; Android {android}; {model}) {webkit} "
            f"Chrome/{_chrome_major(rng)}.0.0.0 Mobile Safari/537.36",
            "mobile",
        )
    if roll < 0.92:
        return (
            f"Mozilla/5.0 (Linux; Android {rng.choice((13, 14))}; {rng.choice(ANDROID_PHONES[4:])})"
            f" {webkit} SamsungBrowser/{rng.choice((24, 25, 26))}.0 "
            f"Chrome/{_chrome_major(rng)}.0.0.0 Mobile Safari/537.36",
            "mobile",
        )
    if roll < 0.94:
        os_version, version = _ios(rng)
        if rng.random() < 0.5:
            app = (
                f"[FBAN/FBIOS;FBAV/{rng.randrange(440, 480)}.0.0.{rng.randrange(20, 60)}.109;"
                f"FBBV/{rng.randrange(600000000, 700000000)};FBDV/iPhone15,2;FBMD/iPhone;"
                f"FBSN/iOS;FBSV/{version};FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]"
            )
        else:
            app = (
                f"Instagram {rng.randrange(320, 350)}.0.4.{rng.randrange(10, 40)}.98 "
                f"(iPhone14,5; iOS {os_version}; en_US; en; scale=3.00; 1170x2532; "
                f"{rng.randrange(600000000, 700000000)})"
            )
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_version} like Mac OS X) AppleWebKit/605.1.15"
            f" (KHTML, like Gecko) Mobile/15E148 {app}",
            "mobile",
        )
    if roll < 0.98:
        os_version, version = _ios(rng)
        return (
            f"Mozilla/5.0 (iPad; CPU OS {os_version} like Mac OS X) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Version/{version} Mobile/15E148 Safari/604.1",
            "tablet",
        )
    return (
        f"Mozilla/5.0 (Linux; Android {rng.choice((12, 13, 14))}; {rng.choice(ANDROID_TABLETS)})"
        f" {webkit} Chrome/{_chrome_major(rng)}.0.0.0 Safari/537.36",
        "tablet",
    )


# Crawlers the pipeline's bot detection knows: name, user agent, page fetches per
# hour per 100 visitors an hour, fetches assets too.
_COMPATIBLE = "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko"
CRAWLERS = (
    (
        "Googlebot",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        5,
        False,
    ),
    (
        "Googlebot smartphone",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
        "like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
        "+http://www.google.com/bot.html)",
        4,
        True,
    ),
    (
        "bingbot",
        f"{_COMPATIBLE}; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) "
        "Chrome/116.0.1938.76 Safari/537.36",
        4,
        False,
    ),
    ("AhrefsBot", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 3, False),
    (
        "SemrushBot",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        2,
        False,
    ),
    ("GPTBot", f"{_COMPATIBLE}); compatible; GPTBot/1.2; +https://openai.com/gptbot", 2, False),
    ("ClaudeBot", f"{_COMPATIBLE}; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)", 1, False),
    (
        "PerplexityBot",
        f"{_COMPATIBLE}; compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)",
        0.5,
        False,
    ),
    ("YandexBot", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", 1, False),
    ("DuckDuckBot", "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", 0.3, False),
    (
        "facebookexternalhit",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        0.5,
        False,
    ),
    ("Twitterbot", "Twitterbot/1.0", 0.3, False),
)
MONITOR = "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"
# Tools the pipeline does not call bots (yet): they never fetch a page here.
SCANNERS = ("python-requests/2.31.0", "Go-http-client/1.1", "curl/8.5.0", "Mozilla/5.0 zgrab/0.x")
SCAN_PATHS = ("/wp-login.php", "/.env", "/xmlrpc.php", "/wp-admin/", "/.git/config", "/admin.php")

# path, content type, typical bytes
BUNDLE = (
    ("/assets/css/main.3f9a1c.css", "text/css", 24_000),
    ("/assets/js/app.8b2e4d.js", "application/javascript", 88_000),
    ("/assets/fonts/inter-var.woff2", "font/woff2", 48_000),
    ("/images/logo.svg", "image/svg+xml", 3_200),
    ("/favicon.ico", "image/x-icon", 15_000),
)
PAGE_BYTES = {304: 310, 0: 0}  # not-modified and aborted answers; errors are ~1.3 kB
APPLE_ICON = ("/apple-touch-icon.png", "image/png", 9_500)


class _Site:
    """One host's pages (with popularity) and the assets a page pulls in."""

    def __init__(self, host: str, index: int, rng: Random):
        self.host = host
        self.html = "text/html" if index % 2 == 0 else "text/html;charset=UTF-8"
        posts = []
        while len(posts) < 36:
            slug = f"{rng.choice(WORDS_A)}-{rng.choice(WORDS_B)}-{rng.randrange(2019, 2026)}"
            if slug not in posts:
                posts.append(slug)
        top = ["/", "/pricing", "/features", "/blog/", "/docs/", "/about", "/contact", "/customers"]
        docs = [f"/docs/{s}/{p}" for s in DOC_SECTIONS for p in DOC_PAGES]
        rng.shuffle(docs)
        self.pages = top + [f"/blog/{slug}" for slug in posts] + docs[:24]
        self.pages += ["/careers", "/legal/privacy.html", "/legal/terms.html", "/changelog"]
        self.weights = list(accumulate(1 / (rank + 1.5) for rank in range(len(self.pages))))
        self.blog = [p for p in self.pages if p.startswith("/blog/") and p != "/blog/"]
        self.docs = [p for p in self.pages if p.startswith("/docs/") and p != "/docs/"]
        self.size = {p: rng.randrange(9_000, 60_000) for p in self.pages}

    def page(self, rng: Random) -> str:
        return self.pages[bisect(self.weights, rng.random() * self.weights[-1])]

    def images(self, path: str) -> list[tuple[str, str, int]]:
        if path.startswith("/blog/") and path != "/blog/":
            slug = path.rsplit("/", 1)[1]
            return [(f"/images/blog/{slug}.webp", "image/webp", 40_000 + len(slug) * 900)]
        if path == "/":
            return [("/images/hero.jpg", "image/jpeg", 180_000)]
        return []


@dataclass(slots=True, eq=False)
class _Visitor:
    host: str
    ip: str
    ua: str
    bot: bool
    edge: str
    proto: str = "HTTP/1.1"
    tls: str = "TLSv1.3"
    asn: int = 64500
    country: str = "US"
    until: float = 0.0  # when its last session ended (0: never seen)


# An event: (ts, visitor, method, path, query, status, content type, bytes, referrer),
# query and referrer raw ("" for none), content type "" for none.


class _Simulation:
    def __init__(self, rng: Random, hosts: tuple[str, ...], visitors_per_hour: float):
        self.rng = rng
        self.sites = [_Site(host, i, rng) for i, host in enumerate(hosts)]
        self.site_weights = list(accumulate([6] + [2] * (len(hosts) - 1)))
        self.rate = visitors_per_hour
        self.returning: list[_Visitor] = []
        self.country_weights = list(accumulate(c[1] for c in COUNTRIES))
        # Each crawler comes from a few addresses of its own and visits every host.
        self.crawlers = []
        for n, (_, ua, rate, assets) in enumerate(CRAWLERS):
            ips = [
                f"10.{250 + n % 2}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(4)
            ]
            edge = rng.choice(COUNTRIES[0][4])
            by_site = [
                [_Visitor(s.host, ip, ua, True, edge, asn=64500 + n) for ip in ips]
                for s in self.sites
            ]
            self.crawlers.append((by_site, rate * visitors_per_hour / 100, assets))
        self.monitor = _Visitor(self.sites[0].host, "10.251.0.8", MONITOR, True, "IAD89-P1")
        self.google = {c[0]: c[3] for c in COUNTRIES}
        monday = datetime(2024, 1, 1, tzinfo=UTC)  # the mean over any week is the same
        self.mean_weight = sum(_activity(monday + timedelta(hours=h)) for h in range(168)) / 168

    # ------------------------------------------------------------ volume

    def hour_weight(self, moment: datetime) -> float:
        """Expected share of traffic in this UTC hour (mean 1 over a week)."""
        return _activity(moment) / self.mean_weight

    def hour(self, start: float, moment: datetime) -> list[tuple]:
        rng = self.rng
        events: list[tuple] = []
        weight = self.hour_weight(moment)
        expected = self.rate * weight
        visits = max(0, round(rng.gauss(expected, math.sqrt(expected) + 1e-9)))
        countries = [
            c[1] * LOCAL_HOURS[(moment.hour + c[2]) % 24] for c in COUNTRIES
        ]  # who is awake now
        cumulative = list(accumulate(countries))
        for _ in range(visits):
            ts = start + rng.random() * 3600
            visitor = self.pick_visitor(ts, cumulative)
            self.session(visitor, ts, events)
        for by_site, rate, assets in self.crawlers:
            fetches = rate * weight
            count = int(fetches) + (rng.random() < fetches - int(fetches))
            for _ in range(count):
                site = bisect(self.site_weights, rng.random() * self.site_weights[-1])
                bot = rng.choice(by_site[site])
                self.crawl(self.sites[site], bot, start + rng.random() * 3600, assets, events)
        for minute in range(0, 60, 5):
            ts = start + minute * 60 + 7
            site = self.sites[0]
            events.append((ts, self.monitor, "GET", "/", "", 200, site.html, 1_800, ""))
        if rng.random() < 0.15 * self.rate / 100:
            scanner = self.new_visitor(cumulative)
            scanner.ua = rng.choice(SCANNERS)
            ts = start + rng.random() * 3500
            for i, path in enumerate(SCAN_PATHS):
                events.append((ts + i * 0.4, scanner, "GET", path, "", 404, "text/html", 1_100, ""))
            if scanner.ua.startswith("curl"):
                events.append((ts + 3, scanner, "HEAD", "/", "", 200, "text/html", 350, ""))
        return events

    # ------------------------------------------------------------ visitors

    def new_visitor(self, cumulative: list[float]) -> _Visitor:
        rng = self.rng
        index = bisect(cumulative, rng.random() * cumulative[-1])
        code, _, _, _, edges = COUNTRIES[index]
        ua, device = _human_agent(rng)
        if rng.random() < (0.35 if device == "mobile" else 0.12):
            ip = (
                f"2001:db8:{index:x}{rng.randrange(256):02x}:{rng.randrange(65536):x}:"
                f"{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
            )
        else:
            ip = f"10.{index * 12 + rng.randrange(12)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        site = self.sites[bisect(self.site_weights, rng.random() * self.site_weights[-1])]
        proto = rng.choice(("HTTP/2.0", "HTTP/2.0", "HTTP/2.0", "HTTP/3.0", "HTTP/1.1"))
        tls = "TLSv1.3" if rng.random() < 0.9 else "TLSv1.2"
        return _Visitor(
            site.host, ip, ua, False, rng.choice(edges), proto, tls, 64496 + index % 16, code
        )

    def pick_visitor(self, ts: float, cumulative: list[float]) -> _Visitor:
        rng = self.rng
        if self.returning and rng.random() < 0.25:
            visitor = rng.choice(self.returning)
            if visitor.until < ts - 3600:
                return visitor
        visitor = self.new_visitor(cumulative)
        if rng.random() < 0.4:
            self.returning.append(visitor)
        return visitor

    # ------------------------------------------------------------ behaviour

    def landing(self, visitor: _Visitor, site: _Site) -> tuple[str, str, str]:
        """Landing path, its query and the referrer that brought the visitor."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.33:  # direct
            return ("/" if rng.random() < 0.6 else site.page(rng)), "", ""
        if roll < 0.66:  # search; Google sends the bare origin nowadays
            path = rng.choice(site.blog + site.docs) if rng.random() < 0.7 else site.page(rng)
            engine = rng.random()
            if engine < 0.75:
                return path, "", f"https://{self.google[visitor.country]}/"
            terms = rng.choice(SEARCH_TERMS).replace(" ", "%20")
            if engine < 0.82:
                return path, "", "https://www.bing.com/"
            if engine < 0.88:
                return path, "", f"https://www.bing.com/search?q={terms}&form=QBLH"
            if engine < 0.96:
                return path, "", "https://duckduckgo.com/"
            return path, "", f"https://search.yahoo.com/search?p={terms}"
        if roll < 0.75:  # social
            template = rng.choice(SOCIAL)
            code = "".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(7))
            referrer = template.format(code=code, number=rng.randrange(40_000_000, 42_000_000))
            query = ""
            if "facebook" in referrer:
                query = f"fbclid=IwAR{_token(rng, 30)}"
            return rng.choice(site.blog), query, referrer
        if roll < 0.78:  # webmail
            return rng.choice(site.blog + ["/", "/pricing"]), "", rng.choice(WEBMAIL)
        if roll < 0.86:  # campaigns
            source, medium, campaign = rng.choice(CAMPAIGNS)
            query = (
                f"utm_source={source}&utm_medium={medium}"
                f"&utm_campaign={campaign.replace(' ', '%20')}"
            )
            referrer = ""
            if medium == "cpc":
                query += f"&gclid=Cj0KCQjw{_token(rng, 40)}" if source == "google" else ""
                referrer = (
                    "https://www.google.com/" if source == "google" else "https://www.bing.com/"
                )
            elif medium == "social":
                referrer = "https://www.linkedin.com/" if source == "linkedin" else "https://t.co/"
            return rng.choice(("/pricing", "/features", "/")), query, referrer
        if roll < 0.91:  # AI assistants
            referrer = rng.choice(AI_SITES)
            query = "utm_source=chatgpt.com" if "chatgpt" in referrer else ""
            return rng.choice(site.docs + site.blog), query, referrer
        return rng.choice(site.blog + site.docs), "", rng.choice(REFERRAL_SITES)

    def session(self, visitor: _Visitor, ts: float, events: list) -> None:
        rng = self.rng
        site = next(s for s in self.sites if s.host == visitor.host)
        returning = visitor.until > 0
        path, query, referrer = self.landing(visitor, site)
        if returning and rng.random() < 0.6:
            query, referrer = "", ""
        seen_bundle = returning
        pages = 1
        while True:
            status = 200
            roll = rng.random()
            if roll < 0.01:  # an old link, then the page it moved to
                moved = path.rstrip("/") if path != "/" else "/index.html"
                events.append((ts, visitor, "GET", moved, query, 301, "text/html", 520, referrer))
                ts += 0.05 + rng.random() * 0.3
            elif roll < 0.02:
                path, status = f"/blog/{rng.choice(WORDS_A)}-post", 404
            elif roll < 0.024:
                status = rng.choice((500, 502, 503, 504))
            elif roll < 0.028:
                status = 0
            elif returning and rng.random() < 0.3:
                status = 304
            size = site.size.get(path, 9_000) if status == 200 else PAGE_BYTES.get(status, 1_300)
            ctype = "" if status == 0 else site.html
            events.append((ts, visitor, "GET", path, query, status, ctype, size, referrer))
            page_url = f"https://{site.host}{path}"
            if status in (200, 304):
                assets = site.images(path)
                if not seen_bundle:
                    assets = list(BUNDLE) + assets
                    if "iPhone" in visitor.ua or "iPad" in visitor.ua:
                        assets.append(APPLE_ICON)
                    seen_bundle = True
                elif rng.random() < 0.15:  # the browser revalidates its cached bundle
                    assets = [(p, t, -1) for p, t, _ in BUNDLE[:2]] + assets
                at = ts + 0.05
                for asset, asset_type, asset_size in assets:
                    at += rng.random() * 0.25
                    answer, sent = (304, 290) if asset_size < 0 else (200, asset_size)
                    from_css = asset.endswith(".woff2")
                    ref = f"https://{site.host}{BUNDLE[0][0]}" if from_css else page_url
                    events.append((at, visitor, "GET", asset, "", answer, asset_type, sent, ref))
                if path == "/contact" and rng.random() < 0.3:
                    at += 20 + rng.random() * 60
                    json_type = "application/json"
                    form = (at, visitor, "POST", "/api/contact", "", 200, json_type, 90, page_url)
                    events.append(form)
            if rng.random() > 0.58 or pages >= 60:
                break
            pages += 1
            if rng.random() < 0.03:
                ts += 1800 + rng.random() * 3600  # the tab left open, then back
            else:
                ts += min(1500.0, 2 + rng.lognormvariate(3.6, 1.0))
            path, query, referrer = site.page(rng), "", page_url
        visitor.until = ts

    def crawl(self, site: _Site, bot_visitor: _Visitor, ts: float, assets: bool, events: list):
        rng = self.rng
        roll = rng.random()
        if roll < 0.03:
            events.append((ts, bot_visitor, "GET", "/robots.txt", "", 200, "text/plain", 420, ""))
            return
        if roll < 0.05:
            ctype = "application/xml"
            events.append((ts, bot_visitor, "GET", "/sitemap.xml", "", 200, ctype, 6_400, ""))
            return
        path = rng.choice(site.pages)
        status = 200
        if roll < 0.08:
            path, status = f"/blog/{rng.choice(WORDS_B)}", 404
        elif roll < 0.12:
            status = 304
        size = site.size[path] if status == 200 else 300
        events.append((ts, bot_visitor, "GET", path, "", status, site.html, size, ""))
        if assets and status == 200:
            for i, (asset, ctype, size) in enumerate(BUNDLE[:2]):
                events.append((ts + 1 + i, bot_visitor, "GET", asset, "", 200, ctype, size, ""))


def _activity(moment: datetime) -> float:
    """How many people are browsing in this UTC hour, in arbitrary units."""
    total = 0.0
    for _, share, offset, _, _ in COUNTRIES:
        local = moment + timedelta(hours=offset)
        weekend = WEEKEND if local.weekday() >= 5 else 1.0
        total += share * LOCAL_HOURS[local.hour] * weekend
    return total


def _token(rng: Random, length: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(length)).decode()[:length]


# ---------------------------------------------------------------- writing


class _Writer:
    """Renders events as log lines of one layout."""

    def __init__(self, rng: Random, layout: int, distribution: str):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout}")
        self.rng = rng
        self.layout = layout
        self.v2 = layout == len(V2_FIELDS)
        self.fields = list(V2_FIELDS) if self.v2 else LEGACY_FIELDS[:layout]
        self.distribution = distribution
        # 2013-2019 (18 to 26 fields) user agents were encoded twice.
        self.double_ua = 18 <= layout <= 26
        self.has_content_type = "sc-content-type" in self.fields
        self.has_host_header = "x-host-header" in self.fields
        self._encoded: dict[str, str] = {}
        self._dates: dict[int, str] = {}
        self._agents: dict[str, str] = {}

    def header(self) -> str:
        return f"#Version: 1.0\n#Fields: {' '.join(self.fields)}\n"

    def encode(self, text: str) -> str:
        encoded = self._encoded.get(text)
        if encoded is None:
            encoded = self._encoded[text] = cloudfront_encode(text)
        return encoded

    def is_page_view(self, event: tuple) -> bool:
        """Whether the pipeline will see a page view in this event as written."""
        _, visitor, method, path, _, status, ctype, _, _ = event
        ctype = (ctype or "-") if self.has_content_type else "-"
        return is_page_view(method, status, ctype, path)

    def line(self, event: tuple) -> str:
        rng = self.rng
        random = rng.random
        ts, visitor, method, path, query, status, ctype, size, referrer = event
        second = int(ts)
        day, rest = divmod(second, 86400)
        day_text = self._dates.get(day)
        if day_text is None:
            moment = datetime.fromtimestamp(day * 86400, UTC)
            day_text = self._dates[day] = moment.strftime("%Y-%m-%d")
        https = not (status == 301 and random() < 0.3)
        if status == 0 or status >= 400:
            result = "Error"
        elif not https:
            result = "Redirect"
        else:
            hit = random()
            result = "Hit" if hit < 0.7 else ("Miss" if hit < 0.93 else "RefreshHit")
        miss = result != "Hit"
        taken = int((20 + random() * 400) if miss else (1 + random() * 20))  # milliseconds
        first_byte = int(taken * (0.3 + random() * 0.6))
        ua = self._agents.get(visitor.ua)
        if ua is None:
            ua = self._agents[visitor.ua] = self.encode(visitor.ua).replace(
                "%", "%25" if self.double_ua else "%"
            )
        encoded = self._encoded
        referrer = encoded.get(referrer) or self.encode(referrer)
        query = encoded.get(query) or self.encode(query)
        request_id = base64.urlsafe_b64encode(rng.randbytes(40)).decode()
        port = 1024 + int(random() * 64511)
        values = [
            day_text,
            _CLOCK[rest],
            visitor.edge,
            str(size + 380 + len(ctype)) if status else "0",
            visitor.ip,
            method,
            CLOUDFRONT_HOST if self.has_host_header else visitor.host,
            path,
            _STATUS[status],
            referrer,
            ua,
            query,
            "-",
            result,
            request_id,
            visitor.host,
            "https" if https else "http",
            str(220 + len(visitor.ua) + len(referrer) + len(path)),
            _SECONDS[taken],
            "-",
            visitor.tls if https else "-",
            _CIPHERS[visitor.tls] if https else "-",
            result,
            visitor.proto,
            "-",
            "-",
            str(port),
            _SECONDS[first_byte],
            result,
            ctype or "-",
            str(size) if status else "-",
            "-",
            "-",
        ]
        if not self.v2:
            return "\t".join(values[: self.layout])
        origin = miss and status
        return "\t".join(
            [str(second), self.distribution]
            + values
            + [
                str(int(ts * 1000)),
                _SECONDS[int(taken * 0.8)] if origin else "-",
                _SECONDS[int(taken * 0.9)] if origin else "-",
                str(visitor.asn),
            ]
        )


_CLOCK = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
_SECONDS = [f"{ms / 1000:.3f}" for ms in range(1000)]
_STATUS = {code: f"{code:03d}" for code in range(1000)}
_CIPHERS = {"TLSv1.3": "TLS_AES_128_GCM_SHA256", "TLSv1.2": "ECDHE-RSA-AES128-GCM-SHA256"}


# ---------------------------------------------------------------- ground truth


@dataclass
class LogFile:
    name: str
    hour: str  # the hour its records happened in (UTC), as in its name
    delivered_at: str  # when CloudFront would have put it (late files: hours later)
    lines: int
    late: bool


@dataclass
class GroundTruth:
    """What the pipeline must find in the files, computed from the records written."""

    distribution_id: str
    layout: int
    seed: int
    start: str
    end: str
    hosts: list[str]
    session_timeout_minutes: int = 30
    files: int = 0
    lines: int = 0
    page_views: int = 0
    human_page_views: int = 0
    bot_page_views: int = 0
    human_visitors: int = 0
    sessions: int = 0
    single_page_sessions: int = 0
    median_session_seconds: float = 0  # last page view minus first, single pages as 0
    top_pages: list[list] = field(default_factory=list)  # [host, path, human page views]
    human_page_views_by_host: dict[str, int] = field(default_factory=dict)
    human_page_views_by_day: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    log_files: list[LogFile] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def files_in_delivery_order(self) -> list[LogFile]:
        """The files in the order CloudFront would have put them into S3."""
        return sorted(self.log_files, key=lambda f: (f.delivered_at, f.name))

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> GroundTruth:
        data = json.loads(text)
        data["log_files"] = [LogFile(**f) for f in data["log_files"]]
        return cls(**data)


def load_ground_truth(outdir: str | os.PathLike) -> GroundTruth | None:
    """The ground truth a generate() run left in outdir, if any."""
    path = Path(outdir) / GROUND_TRUTH_FILE
    return GroundTruth.from_json(path.read_text()) if path.exists() else None


class _Tally:
    def __init__(self, writer: _Writer):
        self.writer = writer
        self.lines = 0
        self.bot_page_views = 0
        self.human_times: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        self.by_host: dict[str, int] = defaultdict(int)
        self.by_page: dict[tuple[str, str], int] = defaultdict(int)
        self.by_day: dict[int, int] = defaultdict(int)  # by days since the epoch
        self.status: dict[int, int] = defaultdict(int)

    def add(self, event: tuple) -> None:
        self.lines += 1
        visitor = event[1]
        self.status[event[5]] += 1
        if not self.writer.is_page_view(event):
            return
        if visitor.bot:
            self.bot_page_views += 1
            return
        second = int(event[0])
        self.human_times[(visitor.host, visitor.ip, visitor.ua)].append(second)
        self.by_host[visitor.host] += 1
        self.by_page[(visitor.host, event[3])] += 1
        self.by_day[second // 86400] += 1

    def fill(self, truth: GroundTruth) -> GroundTruth:
        truth.lines = self.lines
        truth.bot_page_views = self.bot_page_views
        truth.human_page_views = sum(len(times) for times in self.human_times.values())
        truth.page_views = truth.human_page_views + truth.bot_page_views
        truth.human_visitors = len(self.human_times)
        durations = []
        for times in self.human_times.values():
            for session in split_sessions(times, truth.session_timeout_minutes * 60):
                durations.append(session[-1] - session[0])
                truth.single_page_sessions += len(session) == 1
        truth.sessions = len(durations)
        truth.median_session_seconds = median(durations) if durations else 0
        top = sorted(self.by_page.items(), key=lambda item: (-item[1], item[0]))[:10]
        truth.top_pages = [[host, path, count] for (host, path), count in top]
        truth.human_page_views_by_host = dict(sorted(self.by_host.items()))
        truth.human_page_views_by_day = {
            datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d"): count
            for day, count in sorted(self.by_day.items())
        }
        truth.status_counts = {_STATUS[code]: n for code, n in sorted(self.status.items())}
        return truth


# ---------------------------------------------------------------- entry points


def _write(path: Path, text: str, gz: bool, level: int = 6) -> None:
    data = text.encode()
    path.write_bytes(gzip.compress(data, compresslevel=level, mtime=0) if gz else data)


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(
    outdir: str | os.PathLike,
    *,
    days: int = 7,
    visitors_per_hour: float = 200,
    distribution_id: str = DEFAULT_DISTRIBUTION,
    seed: int = 1,
    start: date = DEFAULT_START,
    layout: int = 33,
    gz: bool = True,
    hosts: tuple[str, ...] = DEFAULT_HOSTS,
    session_timeout_minutes: int = 30,
) -> GroundTruth:
    """Write `days` of CloudFront standard logs from `start` (00:00 UTC) into outdir,
    named `<distribution_id>.YYYY-MM-DD-HH.<unique>[.gz]` as CloudFront names them,
    and `ground-truth.json`; return the ground truth. Records that happen after the
    last hour are not written. session_timeout_minutes only changes how the ground
    truth counts sessions (match the pipeline's SESSION_TIMEOUT_MINUTES)."""
    if days < 1 or visitors_per_hour < 0 or not hosts:
        raise ValueError("need days >= 1, visitors_per_hour >= 0 and at least one host")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    previous = load_ground_truth(outdir)
    if previous:  # a new run replaces the files of the last one, and only those
        for log_file in previous.log_files:
            (outdir / log_file.name).unlink(missing_ok=True)
    simulation = _Simulation(Random(f"{seed}:simulation"), tuple(hosts), visitors_per_hour)
    writer = _Writer(Random(f"{seed}:records"), layout, distribution_id)
    files_rng = Random(f"{seed}:files")
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    begin = first.timestamp()
    hours = days * 24
    end = begin + hours * 3600
    pending: dict[int, list[tuple]] = defaultdict(list)
    tally = _Tally(writer)
    truth = GroundTruth(
        distribution_id,
        layout,
        seed,
        _stamp(begin),
        _stamp(end),
        list(hosts),
        session_timeout_minutes,
    )
    used_names: set[str] = set()
    for index in range(hours):
        hour_start = begin + index * 3600
        for event in simulation.hour(hour_start, first + timedelta(hours=index)):
            if event[0] < end:
                pending[int(event[0] // 3600)].append(event)
        # Sessions started this hour and earlier are done with this hour now.
        events = pending.pop(int(hour_start // 3600), [])
        for log_file, chunk in _split_hour(files_rng, events, hour_start, distribution_id, gz):
            while log_file.name in used_names:  # 36^8 names; a clash is all but impossible
                log_file.name = log_file.name[:-1] + "x"
            used_names.add(log_file.name)
            for event in chunk:
                tally.add(event)
            text = writer.header() + "".join(writer.line(e) + "\n" for e in chunk)
            _write(outdir / log_file.name, text, gz)
            delivered = datetime.fromisoformat(log_file.delivered_at).timestamp()
            os.utime(outdir / log_file.name, (delivered, delivered))
            truth.log_files.append(log_file)
    truth.files = len(truth.log_files)
    tally.fill(truth)
    (outdir / GROUND_TRUTH_FILE).write_text(truth.to_json())
    return truth


def _split_hour(rng: Random, events: list[tuple], hour_start: float, distribution: str, gz: bool):
    """The files CloudFront would deliver for one hour: a few, records shuffled a
    little, and sometimes a late file (delivered hours later, same hour's name)."""
    if not events:
        return []
    events.sort(key=lambda e: e[0])
    late: list[tuple] = []
    if rng.random() < 0.15:
        late = [e for e in events if rng.random() < 0.03]
        if late:
            chosen = {id(e) for e in late}
            events = [e for e in events if id(e) not in chosen]
    count = 1 if len(events) < 100 else 1 + rng.randrange(3)
    chunks: list[list[tuple]] = [[] for _ in range(count)]
    for event in events:
        chunks[rng.randrange(count)].append(event)
    stamp = datetime.fromtimestamp(hour_start, UTC).strftime("%Y-%m-%d-%H")
    hour_end = hour_start + 3600
    result = []
    for chunk in chunks + [late]:
        if not chunk:
            continue
        # Edge servers flush in batches: roughly in time order, never exactly.
        jitter = {id(e): e[0] + rng.random() * 40 for e in chunk}
        chunk.sort(key=lambda e: jitter[id(e)])
        is_late = chunk is late
        delay = 3600 + rng.random() * 5 * 3600 if is_late else 300 + rng.random() * 1800
        unique = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
        name = f"{distribution}.{stamp}.{unique}" + (".gz" if gz else "")
        result.append(
            (
                LogFile(name, stamp, _stamp(hour_end + delay), len(chunk), is_late),
                chunk,
            )
        )
    return result


def generate_file(
    path: str | os.PathLike,
    *,
    lines: int = 1_000_000,
    seed: int = 1,
    layout: int = 33,
    gz: bool = True,
    visitors_per_hour: float = 2_000,
    distribution_id: str = DEFAULT_DISTRIBUTION,
    start: date = DEFAULT_START,
    hosts: tuple[str, ...] = DEFAULT_HOSTS,
    session_timeout_minutes: int = 30,
) -> GroundTruth:
    """One large log file of exactly `lines` records (for benchmarks): the same
    simulation run hour after hour until it has enough, in one file. Returns the
    ground truth of what was written (log_files lists the one file)."""
    path = Path(path)
    simulation = _Simulation(Random(f"{seed}:simulation"), tuple(hosts), visitors_per_hour)
    writer = _Writer(Random(f"{seed}:records"), layout, distribution_id)
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    begin = first.timestamp()
    tally = _Tally(writer)
    written = 0
    pending: dict[int, list[tuple]] = defaultdict(list)
    index = 0
    # zlib lets go of the GIL: compress the last batch in a thread while rendering the next.
    with open(path, "wb") as raw, ThreadPoolExecutor(max_workers=1) as compressor:
        out = (
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=1, mtime=0)
            if gz
            else raw
        )
        writes: deque = deque()
        out.write(writer.header().encode())
        while written < lines:
            hour_start = begin + index * 3600
            for event in simulation.hour(hour_start, first + timedelta(hours=index)):
                pending[int(event[0] // 3600)].append(event)
            events = sorted(pending.pop(int(hour_start // 3600), []), key=lambda e: e[0])
            events = events[: lines - written]
            batch = []
            for event in events:
                tally.add(event)
                batch.append(writer.line(event))
            batch.append("")
            writes.append(compressor.submit(out.write, "\n".join(batch).encode()))
            if len(writes) > 2:
                writes.popleft().result()
            written += len(events)
            index += 1
        for write in writes:
            write.result()
        if gz:
            out.close()
    end = begin + index * 3600
    truth = GroundTruth(
        distribution_id,
        layout,
        seed,
        _stamp(begin),
        _stamp(end),
        list(hosts),
        session_timeout_minutes,
    )
    truth.log_files = [LogFile(path.name, _stamp(begin), _stamp(end), written, False)]
    truth.files = 1
    return tally.fill(truth)
