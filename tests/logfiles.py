"""Build CloudFront log files for tests, in any layout, from a few values each."""

from __future__ import annotations

import gzip
import itertools
from urllib.parse import quote

from cflogs.parser import LEGACY_FIELDS, V2_FIELDS

_ids = itertools.count(1)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def encode(text: str, double: bool = False) -> str:
    """Percent-encode as CloudFront does; `double` as in the 2013-2019 era."""
    once = quote(text, safe="/:;,()=&?+.-_*!@$")
    return once.replace("%", "%25") if double else once


def record(
    ts: str = "2025-02-16 10:00:01",
    path: str = "/",
    ip: str = "192.0.2.10",
    ua: str = CHROME,
    status: int = 200,
    method: str = "GET",
    host: str = "www.example.com",
    referrer: str = "-",
    query: str = "-",
    content_type: str = "text/html",
    size: int = 1234,
    double: bool = False,
) -> dict:
    date, time = ts.split(" ")
    return {
        "date": date,
        "time": time,
        "x-edge-location": "FRA56-P1",
        "sc-bytes": str(size),
        "c-ip": ip,
        "cs-method": method,
        "cs(Host)": "d111111abcdef8.cloudfront.net",
        "cs-uri-stem": path,
        "sc-status": f"{status:03d}",
        "cs(Referer)": encode(referrer, double=True) if referrer != "-" else "-",
        "cs(User-Agent)": encode(ua, double=double),
        "cs-uri-query": query,
        "x-edge-result-type": "Hit",
        "x-edge-request-id": f"req{next(_ids):010d}",
        "x-host-header": host,
        "cs-protocol": "https",
        "time-taken": "0.012",
        "x-forwarded-for": "-",
        "sc-content-type": content_type,
        "timestamp": _epoch(date, time),
        "DistributionId": "E2EXAMPLE",
    }


def _epoch(date: str, time: str) -> str:
    from datetime import UTC, datetime

    return str(int(datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=UTC).timestamp()))


def fields_for(count: int) -> list[str]:
    return list(V2_FIELDS) if count == 39 else LEGACY_FIELDS[:count]


def lines(records: list[dict], fields: list[str]) -> list[str]:
    return ["\t".join(r.get(name, "-") for name in fields) for r in records]


def log_text(records: list[dict], count: int = 33, header_sep: str = "\n") -> str:
    fields = fields_for(count)
    header = f"#Version: 1.0{header_sep}#Fields: {' '.join(fields)}\n"
    return header + "".join(line + "\n" for line in lines(records, fields))


def log_bytes(records: list[dict], count: int = 33, gz: bool = True) -> bytes:
    data = log_text(records, count).encode()
    return gzip.compress(data, mtime=0) if gz else data
