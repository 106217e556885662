"""CloudFront access log parsing: legacy standard logs (12 to 33 fields) and
standard logging v2 W3C files, driven by the #Fields header, never by position."""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import cache, lru_cache
from operator import itemgetter
from urllib.parse import unquote

from isal import igzip_threaded, isal_zlib

from .values import DEFAULT_TEXT_LIMIT, MAX_BYTES, clean_text
from .values import window as date_window

# The legacy standard log fields in the order CloudFront added them; a file has
# the first 12, 15, 18, 19, 23, 24, 26 or 33 of them.
LEGACY_FIELDS = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
]
LEGACY_COUNTS = (12, 15, 18, 19, 23, 24, 26, 33)
# Standard logging v2, W3C format, default field selection (39 fields).
V2_FIELDS = (
    ("timestamp", "DistributionId")
    + tuple(LEGACY_FIELDS)
    + ("timestamp(ms)", "origin-fbl", "origin-lbl", "asn")
)

# What a request record is made of, in this order (see Layout.getter).
WANTED = (
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "x-edge-request-id",
    "x-host-header",
    "time-taken",
    "sc-content-type",
    "timestamp",
    "x-edge-result-type",
)
REQUIRED = ("c-ip", "cs-method", "cs-uri-stem", "sc-status")

SAMPLES_PER_REASON = 3
# The gunzip thread hands over blocks of this size (two queued at most) and reads
# eight of them of compressed data at a time. Parsing holds the GIL, so the thread
# gets it to hand over a block about every 5 ms (sys.getswitchinterval()), about
# 100 MB/s of text with 512 KB blocks: ahead of parse+enrich, where 256 KB ones
# left it waiting at 80% of its takes (0.17 s of a 500,000-line file, against
# 0.01 s). Larger blocks cost memory: 13 MB more at 1 MB.
GUNZIP_BLOCK = 512 * 1024
LAMBDA_MB_PER_VCPU = 1769  # Lambda's CPU share: one vCPU-second a second per 1,769 MB


class NotALogFile(ValueError):
    """The object is not a CloudFront access log (reason in the message)."""


class Layout:
    """The field layout of one #Fields line."""

    __slots__ = ("fields", "count", "getter", "has_date", "pad", "strip")

    def __init__(self, fields: list[str]):
        names = list(fields)
        missing = [f for f in REQUIRED if f not in names]
        if missing or not ({"date", "time"} <= set(names) or "timestamp" in names):
            raise NotALogFile(f"#Fields line lacks {', '.join(missing) or 'date/time'}")
        self.fields = names
        self.count = len(names)
        index = {name: i for i, name in enumerate(names)}
        self.has_date = "date" in index and "time" in index
        if self.has_date:
            index.setdefault("timestamp", index["date"])  # read only without date and time
        # A field this layout does not have reads as a '-' appended to the record's
        # `count` values, when there is such a field.
        positions = [index.get(name, self.count) for name in WANTED]
        self.getter = itemgetter(*positions)
        self.pad = self.count in positions
        # The line's CR/LF stays on its last value unless that value is read.
        self.strip = self.count - 1 in positions


class Stats:
    """Counts for one file: data lines and rejected lines by reason, with samples."""

    def __init__(self) -> None:
        self.lines = 0
        self.rejected: Counter[str] = Counter()
        self.samples: dict[str, list[str]] = {}

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, line: str) -> None:
        self.rejected[reason] += 1
        kept = self.samples.setdefault(reason, [])
        if len(kept) < SAMPLES_PER_REASON:
            kept.append(redact(line)[:SAMPLE_LENGTH])


SAMPLE_LENGTH = 500
_COLON = r"(?::|%(?:25)?3[Aa])"  # as logged: plain, encoded or double-encoded
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d)")
# Hex groups with two separators or more, `::` anywhere (also at the end) and
# partial addresses included; the lookarounds keep it off the middle of words.
_IPV6 = re.compile(rf"(?<![\w:%])[0-9A-Fa-f]{{0,4}}(?:{_COLON}[0-9A-Fa-f]{{0,4}}){{2,7}}(?![\w:])")
_CLOCK = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?")


def _mask_ipv6(found: re.Match) -> str:
    text = found.group(0)
    return text if _CLOCK.fullmatch(text) else "<ip>"


def redact(text: str) -> str:
    """Every IPv4 and IPv6 address masked as <ip> (rejected lines are logged):
    dotted quads, IPv6 in full, shortened, `::`-ended, IPv4-mapped or partial,
    with plain or percent-encoded colons; times of day are left alone. Redact
    before cutting, so that a cut cannot leave part of an address."""
    text = _IPV4.sub("<ip>", text.rstrip("\r\n"))
    return _IPV6.sub(_mask_ipv6, text)


def looks_like(first_line: str) -> str:
    """What an object seems to be, by its first line, when it is no text log."""
    if first_line.startswith("PAR1"):
        return "Parquet data"
    if "\x00" in first_line or first_line.count("\ufffd") * 10 > len(first_line):
        return "binary data, not text"
    stripped = first_line.lstrip("\ufeff \t")
    if stripped.startswith(("{", "[")):
        return "JSON, not tab-separated text"
    if stripped.startswith("<"):
        return "XML or HTML, not a log"
    return "text without CloudFront's headers"


# ---------------------------------------------------------------- reading bytes


class _Prefixed(io.RawIOBase):
    """A read-only stream that yields `head` and then the rest of `stream`."""

    def __init__(self, head: bytes, stream):
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_lines(stream) -> io.TextIOBase:
    """The text lines of a binary stream, gunzipped when it starts with the gzip
    magic (by content, not name). Memory stays flat whatever the size; parse()
    turns gzip errors met while reading into NotALogFile. Close it when stopping
    before the end: a gzip stream is read by a thread of its own."""
    head = stream.read(2)
    if not head:
        raise NotALogFile("empty object")
    raw = io.BufferedReader(_Prefixed(head, stream), buffer_size=1 << 20)
    text = {"encoding": "utf-8", "errors": "replace", "newline": "\n"}
    if head == b"\x1f\x8b":
        # isal gunzips at twice the speed of the standard module, and with a
        # second CPU in a thread of its own, without the GIL, while this one parses.
        threads = 1 if second_cpu() else 0
        lines = igzip_threaded.open(raw, "rt", threads=threads, block_size=GUNZIP_BLOCK, **text)
        # Take a whole block at a time, not 8 KB: each take runs the reader's Python.
        lines._CHUNK_SIZE = GUNZIP_BLOCK
        return lines
    return io.TextIOWrapper(raw, **text)


@cache
def second_cpu() -> bool:
    """A CPU to gunzip on besides the one that parses. A Lambda function sees at
    least two vCPUs, but its CPU time grows with its memory: one vCPU's worth at
    1,769 MB, two at 3,538 MB. Below that, a second thread only shares out the
    same CPU time."""
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory:
        return int(memory) >= 2 * LAMBDA_MB_PER_VCPU
    return len(os.sched_getaffinity(0)) > 1


# ---------------------------------------------------------------- decoding

_DOUBLE_PERCENT = re.compile(r"%25([0-9A-Fa-f]{2})")


def _decode(value: str) -> str:
    return clean_text(unquote(_DOUBLE_PERCENT.sub(r"%\1", value)))


_decode_cached = lru_cache(maxsize=16384)(_decode)
# Longer values (user agents can reach 20 KB) are worked out without entering any
# cache, here or in enrich and visitor, so that huge distinct ones cannot grow memory.
LONGEST_CACHED = 1024


def remember(cache: dict, key, value, entries: int, length: int = 0) -> None:
    """Keep value under key in a cache of `entries` at most, emptied when full (it
    fills again; cheaper than an LRU's bookkeeping on every hit). Not kept when
    `length`, that of the value it was worked out from, exceeds LONGEST_CACHED."""
    if length > LONGEST_CACHED:
        return
    if len(cache) >= entries:
        cache.clear()
    cache[key] = value


def decode(value: str) -> str:
    """CloudFront's free-text fields, single- or double-encoded: `%25XX` becomes
    `%XX`, then one percent-decoding. `-` is empty. The result is printable text
    of DEFAULT_TEXT_LIMIT characters at most (see values.clean_text)."""
    if "%" not in value:  # most values: nothing to decode, no cache to look in
        if value.isprintable() and len(value) <= DEFAULT_TEXT_LIMIT:
            return "" if value == "-" else value
        return clean_text(value)
    return _decode_cached(value) if len(value) <= LONGEST_CACHED else _decode(value)


def decode_query(value: str) -> str:
    """A query string with CloudFront's extra encoding removed (`%253A` -> `%3A`);
    the client's own encoding stays for the query-string parser. Printable text,
    cut as values.clean_text does."""
    if value == "-":
        return ""
    return clean_text(_DOUBLE_PERCENT.sub(r"%\1", value) if "%25" in value else value)


# ---------------------------------------------------------------- records

_TIME = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\Z")
_STATUS = {f"{code:03d}": code for code in range(1000)}


OUTSIDE_WINDOW = "date outside the object's window"


def _refused_date(value: str, first: str, last: str) -> str:
    """Why a date field is refused, or '' when it is a valid date in [first, last]."""
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return "bad date/time"
    if len(value) != 10:
        return "bad date/time"
    return "" if first <= value <= last else OUTSIDE_WINDOW


def _valid_time(value: str) -> bool:
    return _TIME.match(value) is not None


def _from_epoch(value: str) -> tuple[str, str] | None:
    try:
        moment = datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S")


# The fields of a record that parse() yields, in order.
RECORD = (
    "date",
    "time",
    "hour",
    "edge",
    "bytes",
    "ip",
    "method",
    "host",
    "path",
    "status",
    "referrer",
    "user_agent",
    "query",
    "request_id",
    "time_taken",
    "content_type",
    "result_type",
)


def header_fields(text: str, delimiter: str = "\t") -> list[str]:
    """The names of a #Fields line: space-separated, or by the file's delimiter."""
    names = text.split()
    if delimiter.strip() and len(names) == 1:
        names = [name.strip() for name in text.split(delimiter) if name.strip()]
    return names


def parse(
    lines: Iterable[str],
    stats: Stats,
    delimiter: str = "\t",
    window: tuple[str, str] | None = None,
) -> Iterator[tuple]:
    """Request records of a log file as tuples in RECORD order: date and time valid
    (UTC) and the date within `window` (first and last 'YYYY-MM-DD', inclusive;
    see values.window), hour the time's first two digits, host from x-host-header
    when present, bytes (up to values.MAX_BYTES) and status ints (status 0 for
    `000`); edge, host and request id empty when
    not logged; the other fields as logged (`-` for empty, still encoded). Values
    are split at `delimiter` (tab, or the one a v2 file was set up with); one more,
    empty, after the last (a trailing delimiter) is dropped. Lines that do not fit
    their header are counted in `stats` and skipped; stats.lines is added up when
    the records end (or the generator is closed). Several #Fields lines each apply
    from where they stand."""
    layout: Layout | None = None
    seen_header = False
    first_day, last_day = window or date_window(None, None)
    max_bytes = MAX_BYTES
    # Each date and time string seen: why it is refused ('' when it is not), and
    # the hour (or '' for a bad time).
    dates: dict[str, str] = {}
    hours: dict[str, str] = {}
    status_code = _STATUS.get
    # The layout's parts and the line count as locals: this loop runs once per line.
    count, getter, has_date, pad, strip = 0, None, False, False, False
    lines_read = 0
    try:
        for line in lines:
            if line[0] == "#":
                seen_header = True
                at = line.find("#Fields:")  # some files put both headers on one line
                if at >= 0:
                    layout = Layout(header_fields(line[at + 8 :], delimiter))
                    count, getter, has_date = layout.count, layout.getter, layout.has_date
                    pad, strip = layout.pad, layout.strip
                continue
            values = line.split(delimiter)
            if len(values) != count:
                if len(values) == count + 1 and layout is not None and not values[-1].strip():
                    values.pop()  # a trailing delimiter, as in AWS's own example file
                else:
                    if not line.rstrip("\r\n"):
                        continue
                    if layout is None:
                        if not seen_header:
                            raise NotALogFile(f"no #Version/#Fields header: {looks_like(line)}")
                        raise NotALogFile("data before any #Fields line")
                    lines_read += 1
                    stats.reject(f"{len(values)} fields, header has {count}", line)
                    continue
            lines_read += 1
            if strip:
                values[-1] = values[-1].rstrip("\r\n")
            if pad:
                values.append("-")
            (date, time, edge, sent, ip, method, cs_host, path, status, referrer, agent, query,
             request_id, host, taken, content_type, epoch, result) = getter(values)  # fmt: skip
            if has_date:
                hour = hours.get(time)
                if hour is None:
                    hour = hours[time] = time[:2] if _valid_time(time) else ""
                refused = dates.get(date)
                if refused is None:
                    refused = dates[date] = _refused_date(date, first_day, last_day)
                if refused or not hour:
                    stats.reject(refused or "bad date/time", line)
                    continue
            else:
                moment = _from_epoch(epoch)
                if moment is None:
                    stats.reject("bad timestamp", line)
                    continue
                date, time = moment
                hour = time[:2]
                if not first_day <= date <= last_day:
                    stats.reject(OUTSIDE_WINDOW, line)
                    continue
            status = status_code(status)
            if status is None:
                stats.reject("bad status", line)
                continue
            try:
                sent = int(sent) if sent.isdigit() else 0
            except ValueError:  # digits that int() does not take, such as '²'
                sent = 0
            if sent > max_bytes:
                stats.reject("sc-bytes out of range", line)
                continue
            if host == "-":
                host = cs_host if cs_host != "-" else ""
            yield (
                date,
                time,
                hour,
                edge if edge != "-" else "",
                sent,
                ip,
                method,
                host,
                path,
                status,
                referrer,
                agent,
                query,
                request_id if request_id != "-" else "",
                taken,
                content_type,
                result,
            )
    except (gzip.BadGzipFile, zlib.error, isal_zlib.error) as exc:
        raise NotALogFile(f"corrupt gzip data: {exc}") from exc
    except EOFError as exc:
        raise NotALogFile("truncated gzip data") from exc
    finally:
        stats.lines += lines_read
