"""Every output CloudFront writes, told apart by content and read into the one text
core (parser.parse), so that each request makes the same record whatever the format:

- legacy and v2 plain/W3C text: a #Fields header, fields split at a tab or at the
  delimiter the v2 delivery was set up with (sniffed from the first data line);
- v2 JSON: one object per line, keyed by the W3C names;
- v2 Parquet: columns named in snake_case, read a row group at a time;
- real-time logs (Kinesis): header-less lines in the configured field order.

Each is gzipped or not. JSON, Parquet and real-time records become W3C text lines
(tab-separated, a #Fields line of their own first), so that the text core checks
every value of every format the same way."""

from __future__ import annotations

import gzip
import io
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from json import loads

from isal import igzip, isal_zlib

from . import parser
from .parser import NotALogFile, Stats

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
PEEK_BYTES = 64 * 1024  # of the object, enough to see what its content starts with
SNIFF_LINES = 100  # header and blank lines looked through for the first data line
# Delimiters a v2 delivery may be set up with, tried in this order; any other
# punctuation a first data line holds is tried after them.
DELIMITERS = "\t|,; "
# Characters of values themselves, never taken for a delimiter.
_VALUE_CHARS = frozenset("-._:/%+=~()*&?!$@'[]")
_BAD_GZIP = (gzip.BadGzipFile, zlib.error, isal_zlib.error, EOFError)


def _key(name: str) -> str:
    """A field name as snake_case, which every spelling of a field shares:
    `cs(User-Agent)`, `cs-user-agent`, `cs_user_agent`."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


_W3C = {_key(name): name for name in parser.V2_FIELDS}
# Real-time logs spell two fields as legacy logs spell the other one: their
# cs-host is the host the viewer asked for, their x-host-header the distribution's.
_REALTIME = {**_W3C, "cs_host": "x-host-header", "x_host_header": "cs(Host)"}
_WANTED = frozenset(parser.WANTED)


def w3c_name(name: str, realtime: bool = False) -> str:
    """The W3C (legacy and v2) name of a field in any spelling; unknown names as given."""
    return (_REALTIME if realtime else _W3C).get(_key(name), name)


# ---------------------------------------------------------------- detection


def content_start(head: bytes) -> bytes:
    """The first bytes of the content: of the gunzipped data when gzipped."""
    if head[:2] != GZIP_MAGIC:
        return head[:8]
    try:
        return zlib.decompressobj(wbits=31).decompress(head, 8)
    except zlib.error:
        return b""  # the text reader says what is wrong with it


@contextmanager
def open_records(
    stream, stats: Stats, window: tuple[str, str] | None = None
) -> Iterator[Iterator[tuple]]:
    """The request records (parser.RECORD tuples) of a log object in any format,
    counted in `stats`, dated within `window` (see parser.parse); what was opened
    for them is closed at the end of the block."""
    head = stream.read(PEEK_BYTES)
    if not head:
        raise NotALogFile("empty object")
    whole = io.BufferedReader(parser._Prefixed(head, stream), buffer_size=1 << 20)
    if content_start(head)[:4] == PARQUET_MAGIC:
        with _spooled(whole, gzipped=head[:2] == GZIP_MAGIC) as file:
            yield parser.parse(_parquet_lines(file, stats), stats, window=window)
        return
    with parser.open_lines(whole) as lines:
        yield _text_records(lines, stats, window)


@contextmanager
def _translated_gzip_errors():
    try:
        yield
    except _BAD_GZIP as exc:
        raise NotALogFile(f"corrupt gzip data: {exc}") from exc


def _text_records(
    lines: Iterable[str], stats: Stats, window: tuple[str, str] | None
) -> Iterator[tuple]:
    """W3C text or JSON lines, told apart by the first line that is not blank."""
    lines = iter(lines)
    head: list[str] = []
    fields = None
    with _translated_gzip_errors():
        for line in lines:
            head.append(line)
            if not line.strip():
                continue
            first = len(head) == 1 or not "".join(head[:-1]).strip()
            if first and line.lstrip().startswith("{"):
                yield from parser.parse(
                    _json_lines(chain(head, lines), stats), stats, window=window
                )
                return
            if line[0] != "#" or len(head) > SNIFF_LINES:
                break
            at = line.find("#Fields:")
            if at >= 0:
                fields = line[at + 8 :]
    delimiter = sniff_delimiter(fields, head[-1]) if fields is not None else "\t"
    yield from parser.parse(_storable(chain(head, lines), stats), stats, delimiter, window)


def _storable(lines: Iterable[str], stats: Stats) -> Iterator[str]:
    """The lines without a NUL character, which PostgreSQL text cannot hold (about
    1% of parsing's time: a byte search a line)."""
    for line in lines:
        if "\x00" in line:
            _reject(stats, "NUL in a line", line)
            continue
        yield line


def sniff_delimiter(fields: str, line: str) -> str:
    """The delimiter that splits a data line into as many values as its #Fields
    line names (tab when none does: the lines are then rejected, counted)."""
    line = line.rstrip("\r\n")
    others = sorted({c for c in line if not c.isalnum()} - _VALUE_CHARS - set(DELIMITERS))
    for delimiter in chain(DELIMITERS, others):
        count = len(parser.header_fields(fields, delimiter))
        values = line.split(delimiter)
        if len(values) == count or len(values) == count + 1 and not values[-1].strip():
            return delimiter
    return "\t"


# ---------------------------------------------------------------- W3C lines


def _fields_line(names: list[str]) -> str:
    return "#Fields: " + " ".join(names) + "\n"


def _clean(value: str) -> str | None:
    """A value ready for a tab-separated line (None: it cannot be stored)."""
    if "\x00" in value:
        return None
    if "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\t", "%09").replace("\n", "%0A").replace("\r", "%0D")
    return value or "-"


def _text(value) -> str | None:
    """A JSON or Parquet value as a log value: `-` for none, numbers as written."""
    if value is None:
        return "-"
    if value.__class__ is str:
        return _clean(value)
    if value.__class__ in (int, float):
        return repr(value)
    return None  # objects, lists, booleans: not a value CloudFront writes


def _w3c_line(line: str) -> str:
    # A line that starts with '#' would be read as a header, its values as names.
    return "%23" + line[1:] if line[:1] == "#" else line


# ---------------------------------------------------------------- JSON lines


def _json_lines(lines: Iterable[str], stats: Stats) -> Iterator[str]:
    """W3C lines from JSON lines: the fields the first object has, in its order.
    A line that is not an object of text and numbers is rejected, counted."""
    keys: list[str] | None = None
    shape = None
    for raw in lines:
        found = shape(raw) if shape is not None else None
        if found is not None:
            line = "\t".join(found.groups())
            yield line if line[0] != "#" else _w3c_line(line)
            continue
        if not raw.strip():
            continue
        try:
            item = loads(raw)
        except ValueError:
            _reject(stats, "not JSON", raw)
            continue
        if item.__class__ is not dict:
            _reject(stats, "not a JSON object", raw)
            continue
        if keys is None:
            names = {w3c_name(key): key for key in item}
            wanted = [name for name in names if name in _WANTED]
            keys = [names[name] for name in wanted]
            yield _fields_line(wanted)
        if shape is None:
            shape = json_shape(raw, item, keys)
        get = item.get
        try:
            line = "\t".join([get(key, "-") for key in keys])
        except TypeError:  # a value that is not text
            line = None
        if line is None or "\\" in raw or "\t\t" in line or line[-1:] == "\t" or line[:1] == "\t":
            # an escape, an empty or missing value, or not text: one value at a time
            values = [_text(get(key)) for key in keys]
            if None in values:
                _reject(stats, "bad JSON value", raw)
                continue
            line = "\t".join(values)
        yield _w3c_line(line) + "\n"


def json_shape(raw: str, item: dict, keys: list[str]) -> Callable | None:
    """The layout of a file's JSON lines, learnt from one of them (`item` parsed
    from `raw`): the same keys in the same order and spacing, every value text. A
    line of that shape whose wanted values hold no escape, tab or NUL and are not
    empty is read by one regular expression, which this returns (its fullmatch), in
    a third of json.loads's time; any other line is parsed as JSON."""
    if "\\" in raw:
        return None
    parts = raw.rstrip("\r\n").split('"')  # '{', key, ': ', value, ', ', key, ... '}'
    if parts[1::4] != list(item) or parts[3::4] != list(item.values()):
        return None  # numbers, nulls or nesting: json.loads for every line
    wanted = set(keys)
    if [key for key in item if key in wanted] != keys:
        return None
    pattern = re.escape(parts[0])
    for n, key in enumerate(parts[1::4]):
        value = r'([^"\\\t\x00]+)' if key in wanted else r'[^"\\]*'
        pattern += f'"{re.escape(key)}"{re.escape(parts[4 * n + 2])}"{value}"'
        pattern += re.escape(parts[4 * n + 4])
    return re.compile(pattern + r"(?:\r?\n)?").fullmatch


def _reject(stats: Stats, reason: str, line: str) -> None:
    stats.lines += 1
    stats.reject(reason, line)


# ---------------------------------------------------------------- Parquet

PARQUET_BATCH_ROWS = 32 * 1024
PARQUET_READ_BUFFER = 1 << 20


@contextmanager
def _spooled(stream, gzipped: bool):
    """The object in a temporary file (Parquet is read from its end first), gunzipped."""
    with tempfile.NamedTemporaryFile(prefix="cflogs-", suffix=".parquet") as file:
        with _translated_gzip_errors():
            source = igzip.GzipFile(fileobj=stream) if gzipped else stream
            shutil.copyfileobj(source, file, 1 << 20)
        file.flush()
        yield file.name


def _parquet_lines(path: str, stats: Stats) -> Iterator[str]:
    """W3C lines from a Parquet file, a batch of a row group at a time, read with a
    small buffer: memory stays flat whatever the file's size."""
    try:  # only here: it is large, and optional (a layer of its own)
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise NotALogFile(f"a Parquet log needs pyarrow (ParquetLogs=true): {exc}") from exc

    try:
        table = pq.ParquetFile(path, buffer_size=PARQUET_READ_BUFFER)
    except (pa.ArrowException, OSError) as exc:
        raise NotALogFile(f"unreadable Parquet file: {exc}") from exc
    columns = {}
    for column in table.schema_arrow.names:
        columns.setdefault(w3c_name(column), column)
    wanted = [name for name in columns if name in _WANTED]
    yield _fields_line(wanted)
    pool = pa.default_memory_pool()
    try:
        for batch in table.iter_batches(
            batch_size=PARQUET_BATCH_ROWS, columns=[columns[name] for name in wanted]
        ):
            texts = [_parquet_text(batch.column(i), pa, pc) for i in range(len(wanted))]
            lines = pc.binary_join_element_wise(*texts, "\t")
            if pc.any(pc.match_substring_regex(lines, _PARQUET_CARE)).as_py():
                # rare: an empty value, a NUL, a first value that starts with '#'
                texts = [pc.if_else(pc.equal(text, ""), "-", text) for text in texts]
                texts[0] = pc.replace_substring_regex(texts[0], "^#", "%23")  # see _w3c_line
                lines = pc.binary_join_element_wise(*texts, "\t")
                unstorable = pc.match_substring(lines, "\x00")
                for line in lines.filter(unstorable).to_pylist():
                    _reject(stats, "NUL in a value", line)
                lines = lines.filter(pc.invert(unstorable))
            del texts, batch
            yield from lines.to_pylist()
            del lines
            pool.release_unused()
    except pa.ArrowException as exc:
        raise NotALogFile(f"unreadable Parquet data: {exc}") from exc


# One pass over a batch's lines finds what needs a closer look. A tab inside a value
# is not escaped: that line no longer fits its header and is rejected, as in text.
_PARQUET_CARE = "\t\t|^\t|\t$|^#|\x00"


def _parquet_text(column, pa, pc):
    """A Parquet column as text: epoch seconds for times, `-` for none."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        column = pc.cast(pc.cast(column, pa.timestamp("s"), safe=False), pa.int64())
    elif pa.types.is_date(kind):
        column = pc.strftime(column, format="%Y-%m-%d")
    if not pa.types.is_string(column.type):
        try:
            column = pc.cast(column, pa.string())
        except pa.ArrowException:  # nested or binary: no value CloudFront writes
            return pa.nulls(len(column), pa.string()).fill_null("-")
    return column.fill_null("-") if column.null_count else column


# ---------------------------------------------------------------- real-time logs


def realtime_text(fields: list[str], lines: Iterable[str]) -> str:
    """Real-time log lines (tab-separated, in the configured field order) as a W3C
    file. Their cs-uri-stem holds the query string too: split off here, as standard
    logs log it. Other spellings as in standard logs (see w3c_name)."""
    names = [w3c_name(field, realtime=True) for field in fields]
    stem = names.index("cs-uri-stem") if "cs-uri-stem" in names else None
    query = names.index("cs-uri-query") if "cs-uri-query" in names else None
    if stem is not None and query is None:
        names.append("cs-uri-query")
    out = [_fields_line(names)]
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            continue
        if stem is not None:
            values = line.split("\t")
            if len(values) == len(fields) + 1 and not values[-1]:
                values.pop()  # a trailing tab
            if len(values) == len(fields):
                path, mark, asked = values[stem].partition("?")
                values[stem] = path
                if query is None:
                    values.append(asked if mark else "-")
                elif values[query] == "-" and mark:
                    values[query] = asked
                line = "\t".join(values)
        out.append(_w3c_line(line) + "\n")
    return "".join(out)
