"""Throughput benchmarks (`make bench`, `python -m cflogs.bench`): short runs on a
synthetic CloudFront log built in memory, figures printed, nothing stored.

parse+enrich (no database): per line what ingest does without COPY: gunzip,
parser.parse, classify and the hourly rollup, then for page views decoding,
enrichment and the visitor id. Caches start empty for every run, as for the
first file a fresh process sees."""

from __future__ import annotations

import argparse
import gzip
import io
import random
import resource
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from . import campaign, ingest, parser, useragent
from .classify import PAGE, kind_of
from .config import Settings

FIELDS = parser.LEGACY_FIELDS  # the 33-field layout, with sc-content-type

ANDROID_MODELS = (
    "SM-G991B",
    "SM-A525F",
    "SM-S911B",
    "SM-A146P",
    "Pixel 7",
    "Pixel 8 Pro",
    "2201117TY",
    "M2101K6G",
    "Redmi Note 9 Pro",
    "CPH2211",
    "RMX3085",
    "ELE-L29",
    "moto g(30)",
    "SM-T510",
    "SM-X200",
    "Lenovo TB-J606F",
    "KFTRWI",
)
BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "curl/8.4.0",
    "python-requests/2.31.0",
)
REFERRERS = (
    ("-", 40),
    ("https://www.google.com/", 20),
    ("https://www.example.com/blog/", 15),
    ("https://www.google.co.uk/search?q=cloudfront%20logs", 3),
    ("https://m.facebook.com/", 4),
    ("https://t.co/abc123", 2),
    ("https://news.ycombinator.com/item?id=41000000", 2),
    ("https://duckduckgo.com/", 2),
    ("https://chatgpt.com/", 1),
    ("android-app://com.google.android.gm/", 1),
    ("https://some-blog.example.net/post/1", 5),
)
QUERIES = (
    ("-", 80),
    ("utm_source=newsletter&utm_medium=email&utm_campaign=spring%2520sale", 5),
    ("gclid=Cj0KCQiA2", 3),
    ("utm_source=google&utm_medium=cpc&utm_campaign=brand", 3),
    ("page=2", 5),
    ("fbclid=IwAR2x", 4),
)
DESKTOPS = ("Windows NT 10.0; Win64; x64", "X11; Linux x86_64", "Macintosh; Intel Mac OS X 10.15")
ASSETS = ("/static/app.js", "/static/site.css", "/img/logo.png", "/fonts/a.woff2", "/favicon.ico")
PAGES = ("/", "/pricing", "/blog/", "/blog/post-{n}", "/docs/{n}.html", "/about")


def user_agent_pool(rng: random.Random, size: int) -> list[str]:
    """Distinct, realistic browser user agents, with a few bots."""
    pool: set[str] = set()
    while len(pool) < size:
        major = rng.randint(100, 131)
        build = f"{major}.0.{rng.randint(4000, 6999)}.{rng.randint(0, 250)}"
        kind = rng.random()
        if kind < 0.35:
            pool.add(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
                f" Chrome/{build} Safari/537.36" + (f" Edg/{build}" if rng.random() < 0.2 else "")
            )
        elif kind < 0.6:
            model = rng.choice(ANDROID_MODELS)
            pool.add(
                f"Mozilla/5.0 (Linux; Android {rng.randint(9, 14)}; {model}) AppleWebKit/537.36 "
                f"(KHTML, like Gecko) Chrome/{build} Mobile Safari/537.36"
            )
        elif kind < 0.8:
            device = "iPhone; CPU iPhone OS" if rng.random() < 0.85 else "iPad; CPU OS"
            ios = f"{rng.randint(14, 18)}_{rng.randint(0, 7)}"
            pool.add(
                f"Mozilla/5.0 ({device} {ios}_{rng.randint(0, 3)} like Mac OS X) "
                f"AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{ios.replace('_', '.')} "
                f"Mobile/15E148 Safari/604.1"
            )
        elif kind < 0.9:
            version = f"{rng.randint(100, 132)}.{rng.randint(0, 3)}"
            platform = rng.choice(DESKTOPS)
            pool.add(f"Mozilla/5.0 ({platform}; rv:{version}) Gecko/20100101 Firefox/{version}")
        else:
            pool.add(
                f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_{rng.randint(0, 7)}) "
                f"AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{rng.randint(14, 18)}."
                f"{rng.randint(0, 6)} Safari/605.1.15"
            )
    return sorted(pool) + list(BOTS)


def synthetic_log(lines: int, distinct_agents: int = 5000, distinct_ips: int = 8000) -> bytes:
    """A gzipped 33-field CloudFront log: about 20% page views, 70% assets, 10%
    other requests, thousands of distinct user agents and client IPs (documentation
    ranges), weighted so that a few of each are common."""
    rng = random.Random(20250216)
    agents = user_agent_pool(rng, distinct_agents)
    ips = [f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{i % 256}" for i in range(768)]
    ips += [
        f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}" for _ in range(distinct_ips)
    ]
    agent_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(agents))]
    rng.shuffle(agent_weights)
    ip_weights = [1 / (rank + 1) ** 0.6 for rank in range(len(ips))]
    referrers, referrer_weights = zip(*REFERRERS, strict=True)
    queries, query_weights = zip(*QUERIES, strict=True)
    start = datetime(2025, 2, 16, 10, tzinfo=UTC)
    agent_column = [parser_encode(ua) for ua in rng.choices(agents, agent_weights, k=lines)]
    ip_column = rng.choices(ips, ip_weights, k=lines)
    referrer_column = rng.choices(referrers, referrer_weights, k=lines)
    query_column = rng.choices(queries, query_weights, k=lines)
    buffer = io.BytesIO()
    compressed = gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0)
    out = io.TextIOWrapper(compressed, encoding="utf-8", newline="\n")
    out.write(f"#Version: 1.0\n#Fields: {' '.join(FIELDS)}\n")
    for i in range(lines):
        moment = start + timedelta(seconds=rng.randrange(3600))
        kind = rng.random()
        status, method, content_type = "200", "GET", "text/html"
        if kind < 0.2:
            path = rng.choice(PAGES).format(n=rng.randrange(500))
        elif kind < 0.9:
            path = rng.choice(ASSETS)
            content_type = "application/javascript"
        else:
            path = rng.choice(PAGES).format(n=rng.randrange(500))
            status, method = rng.choice((("404", "GET"), ("301", "GET"), ("200", "POST")))
        referrer = referrer_column[i]
        out.write(
            "\t".join(
                (
                    moment.strftime("%Y-%m-%d"),
                    moment.strftime("%H:%M:%S"),
                    "FRA56-P1",
                    str(rng.randrange(200, 90000)),
                    ip_column[i],
                    method,
                    "d111111abcdef8.cloudfront.net",
                    path,
                    status,
                    parser_encode(referrer).replace("%", "%25") if referrer != "-" else "-",
                    agent_column[i],
                    query_column[i],
                    "-",
                    "Hit",
                    f"req{i:012d}",
                    "www.example.com",
                    "https",
                    "512",
                    "0.012",
                    "-",
                    "TLSv1.3",
                    "TLS_AES_128_GCM_SHA256",
                    "Hit",
                    "HTTP/2.0",
                    "-",
                    "-",
                    "50123",
                    "0.010",
                    "Hit",
                    content_type,
                    "1234",
                    "-",
                    "-",
                )
            )
        )
        out.write("\n")
    out.close()  # closes the gzip stream too, not the buffer
    return buffer.getvalue()


def parser_encode(text: str) -> str:
    """Encode a free-text field the way CloudFront does (spaces and the like)."""
    return text.replace("%", "%25").replace(" ", "%20").replace('"', "%22")


def parse_and_enrich(data: bytes, pipeline: ingest.Pipeline) -> tuple[int, int]:
    """ingest's per-line work (ingest.read_records) without the database:
    (lines, page views)."""
    stats = parser.Stats()
    tally = ingest.read_records(io.BytesIO(data), 0, pipeline, stats, lambda row: None)
    return stats.lines, tally.pages


def clear_caches() -> None:
    useragent.columns.cache_clear()
    campaign.parse.cache_clear()
    parser._decode_cached.cache_clear()


def timed(function: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each run. On a machine shared with other
    work the CPU figure is the steadier one."""
    wall, cpu = [], []
    for _ in range(runs):
        clear_caches()
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--lines", type=int, default=300_000)
    args.add_argument("--agents", type=int, default=5000, help="distinct user agents")
    args.add_argument("--runs", type=int, default=3)
    options = args.parse_args(argv)

    data = synthetic_log(options.lines, options.agents)
    settings = Settings(geoip_db_path=None, visitor_id_secret="bench-key-0123456789abcdef")
    pipeline = ingest.Pipeline(settings)
    pipeline.enricher.geo  # noqa: B018 - open (or decline) the GeoIP database before timing
    useragent.columns("warm up the resolver and the crawler list")

    lines, page_views = parse_and_enrich(data, pipeline)
    agents = {
        parser.decode(record[10])
        for record in parser.parse(parser.open_lines(io.BytesIO(data)), parser.Stats())
        if kind_of(record[5], record[8], record[14], record[7]) is PAGE
    }
    print(
        f"synthetic file: {lines:,} lines, {page_views:,} page views "
        f"({page_views / lines:.0%}), {len(agents):,} distinct page-view user agents, "
        f"{len(data) / 1e6:.1f} MB gzipped"
    )

    def parse_only():
        for _ in parser.parse(parser.open_lines(io.BytesIO(data)), parser.Stats()):
            pass

    def agents_only():
        for agent in agents:
            useragent.columns(agent)

    for name, function, count, unit in (
        ("parse only (gunzip + parser.parse)", parse_only, lines, "lines"),
        (
            "parse+enrich, no database",
            lambda: parse_and_enrich(data, pipeline),
            lines,
            "lines",
        ),
        ("distinct user agents, cold cache", agents_only, len(agents), "user agents"),
    ):
        wall, cpu = timed(function, options.runs)
        median, best, median_cpu = statistics.median(wall), min(wall), statistics.median(cpu)
        print(
            f"{name:36s} {count / median:>9,.0f} {unit}/s (median of {options.runs}, "
            f"best {count / best:,.0f}; per CPU second {count / median_cpu:,.0f})"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB (building the synthetic file included)")


if __name__ == "__main__":
    main()
