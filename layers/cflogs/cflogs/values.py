"""What a value must be to be stored: one rule per column.

Every value of a log line is written, in the end, by whoever sent the request, so
each one either fits its column or is made to: text loses control and other
non-printable characters (NUL among them, which PostgreSQL refuses) and is cut to
its column's length; numbers out of their range are dropped (NULL) or, where the
line cannot be right, the line is rejected; a timestamp must fall in the window
of the object it came from. ingest applies these where each value is made (once
per distinct value where it is cached); `problems` checks a whole row, for the
fallback load that rejects rows instead of failing an object, and for tests."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from functools import cache

REPLACEMENT = "\ufffd"

# Longest text kept per column, in characters. Hosts and edges are keys of the
# traffic rollup's index (which refuses entries over about 2,700 bytes); the
# rest are cut where no real value reaches.
TEXT_LIMITS = {
    "request_id": 128,
    "host": 253,  # the longest DNS name
    "path": 4096,
    "query": 4096,
    "edge_location": 64,
    "bot_name": 100,
    "device_type": 16,
    "device_brand": 100,
    "device_model": 200,
    "browser": 100,
    "browser_version": 50,
    "os": 100,
    "os_version": 50,
    "country_code": 8,
    "country": 100,
    "region": 200,
    "city": 200,
    "referrer_host": 253,
    "referrer_path": 2048,
    "referrer_category": 16,
    "referrer_source": 200,
    "search_terms": 500,
    "utm_source": 500,
    "utm_medium": 500,
    "utm_campaign": 500,
    "utm_term": 500,
    "utm_content": 500,
    "click_id": 500,
}
DEFAULT_TEXT_LIMIT = 4096

# sc-bytes: CloudFront serves objects of up to 50 GB; a larger count is a broken
# line. Kept far below bigint so that rollup sums cannot overflow either.
MAX_BYTES = 1 << 40
# time-taken: seconds, with millisecond precision; a request is cut off long before.
MAX_SECONDS = 86400.0
SMALLINT = 32767

# CloudFront access logging began in 2008; nothing is logged ahead of now.
EARLIEST = date(2008, 1, 1)
# Entries can be up to a day late and go into the file of their hour; a day on
# either side of an object's own date, and of now, is room for clocks and zones.
SLACK = timedelta(days=1)

_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_text(value: str, limit: int = DEFAULT_TEXT_LIMIT) -> str:
    """The value with every non-printable character (C0 and C1 controls, line and
    paragraph separators, format characters such as bidi overrides, unassigned
    code points) replaced by U+FFFD, and cut to `limit` characters."""
    if not value.isprintable():
        if value.isascii():
            value = _ASCII_CONTROL.sub(REPLACEMENT, value)
        else:
            value = "".join(c if c.isprintable() else REPLACEMENT for c in value)
    return value if len(value) <= limit else value[:limit]


@cache
def _limits(names: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(TEXT_LIMITS.get(name, DEFAULT_TEXT_LIMIT) for name in names)


def clean_columns(names: tuple[str, ...], values: tuple) -> tuple:
    """values (text or anything else) by their column names, text cleaned."""
    limits = _limits(names)
    for value, limit in zip(values, limits, strict=True):
        if value.__class__ is str and (len(value) > limit or not value.isprintable()):
            break
    else:  # the usual case: nothing to clean
        return values
    return tuple(
        clean_text(value, limit) if isinstance(value, str) else value
        for value, limit in zip(values, limits, strict=True)
    )


def seconds(value: str) -> float | None:
    """time-taken as a float, or None when it is not a plausible duration."""
    try:
        taken = float(value)
    except ValueError:
        return None
    return taken if 0.0 <= taken <= MAX_SECONDS else None  # NaN fails both


def window(key_first: datetime | None, key_last: datetime | None, now: datetime | None = None):
    """(first, last) dates, as 'YYYY-MM-DD' strings, that a request in an object
    may have: around the hours its key names, when it names some, and never
    before CloudFront logging or after now."""
    today = (now or datetime.now(UTC)).date()
    first, last = EARLIEST, today + SLACK
    if key_first is not None and key_last is not None:
        first = max(first, key_first.date() - SLACK)
        last = min(last, key_last.date() + SLACK)
    return first.isoformat(), last.isoformat()


def problems(columns: tuple[str, ...], row: tuple) -> list[str]:
    """What in a row its column would refuse or this module forbids ([] when it
    can be stored). Checks every value, so it is for the slow paths."""
    found = []
    for name, value in zip(columns, row, strict=True):
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str):
            if not value.isprintable():
                found.append(f"{name}: non-printable characters")
            if len(value) > TEXT_LIMITS.get(name, DEFAULT_TEXT_LIMIT):
                found.append(f"{name}: longer than {TEXT_LIMITS.get(name, DEFAULT_TEXT_LIMIT)}")
        elif isinstance(value, int):
            limit = SMALLINT if name == "status" else MAX_BYTES if name == "bytes" else 1 << 63
            if not -limit <= value < limit:
                found.append(f"{name}: out of range")
        elif isinstance(value, float) and not (math.isfinite(value) and abs(value) <= MAX_SECONDS):
            found.append(f"{name}: out of range")
    return found
