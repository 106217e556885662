"""Load one log object into PostgreSQL: one transaction per object, replay-safe."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import psycopg
from psycopg import errors, sql
from psycopg.types.json import Jsonb

from . import db, enrich, formats, parser, values
from .classify import ASSET, OTHER, PAGE, kind_of
from .config import Settings
from .dashboard import rollups
from .visitor import VisitorIds, visitor_ids

log = logging.getLogger(__name__)

PAGE_VIEW_COLUMNS = (
    "file_id",
    "request_id",
    "ts",
    "visitor_id",
    "host",
    "path",
    "query",
    "status",
    "bytes",
    "time_taken",
    "edge_location",
) + enrich.COLUMNS
CACHE_HITS = frozenset({"Hit", "RefreshHit"})
# Page views with a new user agent or source wait for this many new agents, or
# this many of them (the file's first, when it has few agents), then all are resolved.
NEW_AGENTS_BATCH = 256
WAITING_PAGE_VIEWS = 2048
STATUS_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx")


@dataclass
class Source:
    """One log object: where it is, its version, and how to read it (again)."""

    bucket: str
    key: str
    etag: str | None
    size: int | None
    open: Callable[[], BinaryIO]


@dataclass
class FileResult:
    bucket: str
    key: str
    status: str
    lines: int = 0
    page_views: int = 0
    bot_page_views: int = 0
    assets: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    first_ts: str | None = None
    last_ts: str | None = None
    seconds: float = 0.0
    reason: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class Pipeline:
    """What loading needs besides the database: enrichment and visitor ids.
    Built once per process (Lambda cold start, CLI run) and reused."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        self.enricher = enrich.Enricher(self.settings)
        self.visitors: VisitorIds = visitor_ids(self.settings)


class ObjectGone(LookupError):
    """The object was deleted before it could be read."""


class DeadlineExceeded(RuntimeError):
    """The time given to load the object ran out; nothing of it was kept."""


DEADLINE_REASON = "stopped before the function's deadline; it will be retried"


class _Deadline:
    """A binary stream that raises DeadlineExceeded once `deadline`
    (time.monotonic()) has passed: checked at each read of the object, so it
    costs nothing per line."""

    def __init__(self, stream: BinaryIO, deadline: float):
        self._stream, self._deadline = stream, deadline

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self._deadline:
            raise DeadlineExceeded(DEADLINE_REASON)
        return self._stream.read(size)

    def close(self) -> None:
        self._stream.close()


# Errors of a value the database refuses (invalid text, a number out of range, an
# index entry too large). What reaches COPY is cleaned first (see values); should
# anything still be refused, the object is loaded again with every row checked.
REFUSED_VALUES = (errors.DataError, errors.ProgramLimitExceeded)


_shared_pipeline: Pipeline | None = None


def shared_pipeline(settings: Settings) -> Pipeline:
    """One Pipeline per process, built at first use (not at a cold start that loads nothing)."""
    global _shared_pipeline
    if _shared_pipeline is None:
        _shared_pipeline = Pipeline(settings)
    return _shared_pipeline


class _MissingPartitions(Exception):
    def __init__(self, months: set[str]):
        super().__init__(f"page_views partitions missing for {sorted(months)}")
        self.months = months


def local_source(path: str | os.PathLike) -> Source:
    path = os.path.abspath(path)
    stat = os.stat(path)
    return Source(
        bucket="file",
        key=path,
        etag=f"{stat.st_size}-{stat.st_mtime_ns}",
        size=stat.st_size,
        open=lambda: open(path, "rb"),
    )


def ingest(
    conn: psycopg.Connection, source: Source, pipeline: Pipeline, deadline: float | None = None
) -> FileResult:
    """Replace the object's rows with what it holds now, in one transaction.
    What no retry can change is recorded and returned, not raised: an object that
    is not a CloudFront log, or whose every line is rejected, as failed for good;
    one deleted before it was read, as gone. Database and read errors, and a
    `deadline` (time.monotonic()) that passes, roll back and raise."""
    started = time.perf_counter()
    created: set[str] = set()
    check_rows = False
    while True:  # once more for each month that had no partition yet
        try:
            with conn.transaction():
                result = _load(conn, source, pipeline, deadline, check_rows)
        except _MissingPartitions as missing:
            if missing.months <= created:
                raise RuntimeError(f"no page_views partition for {missing.months}") from None
            ensure_partitions(conn, missing.months)
            created |= missing.months
            continue
        except errors.QueryCanceled as exc:
            if deadline is not None and time.monotonic() >= deadline:  # our own bound
                raise DeadlineExceeded(DEADLINE_REASON) from exc
            raise
        except REFUSED_VALUES as exc:
            if check_rows:
                raise
            log.warning("%s: the database refused a value (%s); loading it again, rows checked",
                        source.key, type(exc).__name__)  # fmt: skip
            check_rows = True
            continue
        except parser.NotALogFile as exc:
            result = FileResult(source.bucket, source.key, "failed", reason=str(exc))
            _record_failure(conn, source, result.reason, final=True)
        except ObjectGone as exc:
            result = FileResult(source.bucket, source.key, "gone", reason=str(exc))
            _record_failure(conn, source, result.reason, status="gone", final=True)
        result.seconds = round(time.perf_counter() - started, 3)
        return result


def ingest_in_run(
    conn: psycopg.Connection, source: Source, pipeline: Pipeline
) -> tuple[psycopg.Connection, FileResult]:
    """Load one object of a run of many (the CLI's and the local backfill's loop):
    its failure is noted in the ledger and returned, never raised, so the run goes
    on; when the server dropped the connection, a new one takes its place. A fault
    of the environment (AWS credentials, region) raises: no object would load.
    Returns the connection to go on with, and the result."""
    from botocore.exceptions import BotoCoreError

    conn = db.reconnected(conn, pipeline.settings)
    try:
        return conn, ingest(conn, source, pipeline)
    except BotoCoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - the next object may load
        conn = db.reconnected(conn, pipeline.settings)
        record_error(conn, source, exc)
        failed = FileResult(source.bucket, source.key, "failed", reason=failure_reason(exc))
        return conn, failed


def _record_failure(
    conn: psycopg.Connection,
    source: Source,
    reason: str,
    *,
    status: str = "failed",
    final: bool = False,
) -> None:
    """Note in the ledger that the object failed (or is gone), and whether a retry
    could change that (`final` when it could not: backfill leaves it alone)."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO log_files AS f (bucket, key, etag, size, status, reason, final,
                                           attempts, processed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, 1, now())
               ON CONFLICT (bucket, key) DO UPDATE SET etag = excluded.etag,
                   size = excluded.size, status = excluded.status, reason = excluded.reason,
                   final = excluded.final, attempts = f.attempts + 1, processed_at = now()""",
            (source.bucket, source.key, source.etag, source.size, status, reason, final),
        )


def failure_reason(exc: BaseException) -> str:
    """What the ledger says of an unexpected failure."""
    return f"{type(exc).__name__}: {exc}"[:1000]


def record_error(conn: psycopg.Connection, source: Source, exc: BaseException) -> None:
    """Best effort: note an unexpected failure in the ledger before it is raised.
    A fault of the environment (AWS credentials, region, network) is not the
    object's and is not noted: the object simply stays to be loaded."""
    from botocore.exceptions import BotoCoreError

    if isinstance(exc, BotoCoreError):
        return
    try:
        if conn.closed or conn.broken:
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        _record_failure(conn, source, failure_reason(exc))
    except psycopg.Error:
        log.warning("could not record the failure of %s in the ledger", source.key)


def _load(
    conn: psycopg.Connection,
    source: Source,
    pipeline: Pipeline,
    deadline: float | None = None,
    check_rows: bool = False,
) -> FileResult:
    if deadline is not None:  # nor may a statement, or a wait for a lock, outlast it
        left_ms = max(int((deadline - time.monotonic()) * 1000), 1)
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(left_ms),))
    file_id = conn.execute(
        """INSERT INTO log_files AS f (bucket, key, etag, size, status)
           VALUES (%s, %s, %s, %s, 'processing')
           ON CONFLICT (bucket, key) DO UPDATE SET status = 'processing'
           RETURNING file_id""",
        (source.bucket, source.key, source.etag, source.size),
    ).fetchone()[0]
    # The row lock taken above serialises two loads of the same object.
    conn.execute(
        """WITH old AS (DELETE FROM page_views WHERE file_id = %s RETURNING visitor_id, ts, is_bot)
           INSERT INTO dirty_visitors (visitor_id, first_ts, last_ts)
           SELECT visitor_id, min(ts), max(ts) FROM old WHERE NOT is_bot GROUP BY visitor_id""",
        (file_id,),
    )
    stats = parser.Stats()
    known = known_months(conn)
    columns = sql.SQL(", ").join(map(sql.Identifier, PAGE_VIEW_COLUMNS))
    with (
        source.open() as stream,
        conn.cursor().copy(sql.SQL("COPY page_views ({}) FROM STDIN").format(columns)) as copy,
    ):
        write_row = _checked(copy.write_row, stats) if check_rows else copy.write_row
        timed = stream if deadline is None else _Deadline(stream, deadline)
        window = object_window(source.key)
        tally = read_records(timed, file_id, pipeline, stats, write_row, known, window)
    if stats.lines and stats.rejected_total == stats.lines:
        raise parser.NotALogFile(
            f"all {stats.lines} lines rejected: "
            + ", ".join(f"{reason} ({n})" for reason, n in stats.rejected.most_common())
        )

    conn.execute(
        """INSERT INTO dirty_visitors (visitor_id, first_ts, last_ts)
           SELECT visitor_id, min(ts), max(ts) FROM page_views
           WHERE file_id = %s AND NOT is_bot GROUP BY visitor_id""",
        (file_id,),
    )
    _replace_traffic(conn, file_id, tally.traffic)
    rollups.replace_file(conn, file_id, tally.not_found)

    result = FileResult(
        source.bucket,
        source.key,
        "done",
        lines=stats.lines,
        page_views=tally.pages,
        bot_page_views=tally.bots,
        assets=tally.assets,
        rejected=stats.rejected_total,
        rejected_by_reason=dict(stats.rejected),
        first_ts=tally.first,
        last_ts=tally.last,
    )
    if stats.rejected:
        log.warning(
            "rejected lines in %s: %s; samples: %s", source.key, dict(stats.rejected), stats.samples
        )
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded(DEADLINE_REASON)
    conn.execute(
        """UPDATE log_files SET etag = %s, size = %s, status = 'done', reason = NULL,
               final = false, attempts = attempts + 1, lines = %s, page_views = %s,
               bot_page_views = %s, assets = %s, rejected = %s, rejected_by_reason = %s,
               first_ts = %s, last_ts = %s, processed_at = now()
           WHERE file_id = %s""",
        (
            source.etag,
            source.size,
            result.lines,
            result.page_views,
            result.bot_page_views,
            result.assets,
            result.rejected,
            Jsonb(result.rejected_by_reason) if result.rejected_by_reason else None,
            result.first_ts,
            result.last_ts,
            file_id,
        ),
    )
    return result


def object_window(key: str) -> tuple[str, str]:
    """The dates a request in the object may have (values.window), by its key."""
    from .backfill import key_date  # backfill builds on this module

    dated = key_date(key)
    if dated is None:
        return values.window(None, None)
    return values.window(dated.first, dated.last)


def _checked(write_row: Callable[[tuple], object], stats: parser.Stats) -> Callable:
    """write_row that rejects, with its reason, a row values.problems finds fault with."""

    def write_checked(row: tuple) -> None:
        found = values.problems(PAGE_VIEW_COLUMNS, row)
        if found:
            stats.reject(f"value not storable: {found[0]}", f"request {row[1]!r}")
            return
        write_row(row)

    return write_checked


@dataclass
class Tally:
    """What reading one object counted besides its page view rows."""

    traffic: dict[tuple, list[int]] = field(default_factory=dict)
    pages: int = 0
    bots: int = 0
    assets: int = 0
    first: str | None = None  # the first and last page view's time
    last: str | None = None
    not_found: dict[tuple, int] = field(default_factory=dict)  # (date, host, path) as logged


def read_records(
    stream: BinaryIO,
    file_id: int,
    pipeline: Pipeline,
    stats: parser.Stats,
    write_row: Callable[[tuple], object],
    months: set[str] | None = None,
    window: tuple[str, str] | None = None,
) -> Tally:
    """The per-line work of a load, without the database: every request counted into
    the hourly rollup, every page view enriched and handed to write_row as a row in
    PAGE_VIEW_COLUMNS order, its values cleaned as values says. A page view of a
    month not in `months` (when given) raises _MissingPartitions: the caller makes
    the partition and starts again. `window`: see parser.parse."""
    tally = Tally()
    first = last = None
    bots = 0
    enricher = pipeline.enricher
    agents, agent = enricher.agents.get, enricher.agent
    sources, source = enricher.sources.get, enricher.source
    location = None  # the GeoIP database is opened at the first page view
    visitor_id = pipeline.visitors.visitor_id
    decode = parser.decode
    clean = values.clean_text
    request_id_limit = values.TEXT_LIMITS["request_id"]
    # host and edge location as logged -> as stored
    hosts: dict[str, str] = {}
    edges: dict[str, str] = {}
    # Page views whose user agent or referrer and query are new wait until a batch
    # of new ones is resolved together, a kind at a time: ua-parser's extractors
    # and URL parsing run two to three times as fast one after another as between
    # lines of parsing (their code and data stay in the CPU's caches). Rows reach
    # write_row out of line order; nothing depends on it.
    waiting: list[tuple] = []
    new_agents: set[str] = set()
    new_sources: set[tuple[str, str, str]] = set()

    def page_view(record: tuple, ts: str, known_agent: tuple, known_source: tuple) -> bool:
        """Write the row of one page view; whether it is a bot's."""
        (date, time_, hour, edge, sent, ip, method, host, path, status, referrer, ua, query,
         request_id, taken, content_type, result) = record  # fmt: skip
        user_agent, agent_columns = known_agent
        query, source_columns = known_source
        stored_host = hosts.get(host)
        if stored_host is None:
            stored_host = _stored(hosts, host, "host")
        stored_edge = edges.get(edge)
        if stored_edge is None:
            stored_edge = _stored(edges, edge, "edge_location")
        write_row(
            (
                file_id,
                clean(request_id, request_id_limit),
                ts,
                visitor_id(host, ip, user_agent, date),
                stored_host,
                decode(path),
                query,
                status,
                sent,
                values.seconds(taken),
                stored_edge,
                *agent_columns,
                *location(ip),
                *source_columns,
            )
        )
        return agent_columns[0]

    def resolve_waiting() -> int:
        for ua in new_agents:  # one after another, the point of waiting
            agent(ua)
        for source_key in new_sources:
            source(*source_key)
        bot_views = 0
        for record, ts, ua, source_key in waiting:
            known_agent = agents(ua) or agent(ua)
            known_source = sources(source_key) or source(*source_key)
            bot_views += page_view(record, ts, known_agent, known_source)
        waiting.clear()
        new_agents.clear()
        new_sources.clear()
        return bot_views

    # Where the log has the content type, kind_of needs no path: one lookup a line.
    kinds: dict[tuple, str] = {}
    # Requests and bytes by the rollup's key, but with the status and result type
    # as logged: one lookup a line; _rollup works out classes and hits per key.
    requests: dict[tuple, list[int]] = {}
    with formats.open_records(stream, stats, window) as records:  # closed also when a row fails
        for record in records:
            (date, time_, hour, edge, sent, ip, method, host, path, status, referrer, ua, query,
             request_id, taken, content_type, result) = record  # fmt: skip
            if content_type == "-":
                kind = kind_of(method, status, content_type, path)
            else:
                kind = kinds.get((method, status, content_type))
                if kind is None:
                    kind = kinds[method, status, content_type] = kind_of(
                        method, status, content_type, path
                    )
            key = (date, hour, host, edge, status, kind, result)
            slot = requests.get(key)
            if slot is None:
                requests[key] = [1, sent]
            else:
                slot[0] += 1
                slot[1] += sent
            if kind is not PAGE:
                if status == 404:  # the dashboard's pages not found
                    missing = (date, host, path)
                    tally.not_found[missing] = tally.not_found.get(missing, 0) + 1
                continue
            if months is not None and date[:7] not in months:
                raise _MissingPartitions({date[:7]})  # early: the retry re-reads little
            ts = f"{date} {time_}+00"
            if first is None or ts < first:
                first = ts
            if last is None or ts > last:
                last = ts
            if location is None:
                location = enricher.geo.lookup
            known_agent = agents(ua)
            source_key = (host, referrer, query)
            known_source = sources(source_key)
            if known_agent and known_source:
                bots += page_view(record, ts, known_agent, known_source)
                continue
            waiting.append((record, ts, ua, source_key))
            # (values too long to be cached wait too, but are worked out once, then)
            if known_agent is None and len(ua) <= parser.LONGEST_CACHED:
                new_agents.add(ua)
            if known_source is None and max(len(referrer), len(query)) <= parser.LONGEST_CACHED:
                new_sources.add(source_key)
            if len(new_agents) >= NEW_AGENTS_BATCH or len(waiting) >= WAITING_PAGE_VIEWS:
                bots += resolve_waiting()
        bots += resolve_waiting()
    tally.traffic, by_kind = _rollup(requests, hosts, edges)
    tally.first, tally.last = first, last
    tally.pages, tally.bots, tally.assets = by_kind[PAGE], bots, by_kind[ASSET]
    return tally


def _rollup(requests: dict[tuple, list[int]], hosts: dict, edges: dict) -> tuple[dict, dict]:
    """From [requests, bytes] by (date, hour, host, edge, status, kind, result
    type): the object's traffic_hourly rows, [requests, bytes, hits] by (date,
    hour, host, edge as stored, status class, kind); and the requests of each
    kind. `hosts` and `edges`: the page views' logged -> stored caches."""
    traffic: dict[tuple, list[int]] = {}
    by_kind = dict.fromkeys((PAGE, ASSET, OTHER), 0)
    for (date, hour, host, edge, status, kind, result), (count, sent) in requests.items():
        by_kind[kind] += count
        hits = count if result in CACHE_HITS else 0
        host = hosts.get(host) or _stored(hosts, host, "host")
        edge = edges.get(edge) or _stored(edges, edge, "edge_location")
        key = (date, hour, host, edge, status // 100, kind)
        slot = traffic.get(key)
        if slot is None:
            traffic[key] = [count, sent, hits]
        else:
            slot[0] += count
            slot[1] += sent
            slot[2] += hits
    return traffic, by_kind


def _stored(cache: dict[str, str], logged: str, column: str) -> str:
    """A host or edge location as stored (values.clean_text), kept in `cache`."""
    stored = values.clean_text(logged, values.TEXT_LIMITS[column])
    parser.remember(cache, logged, stored, enrich.CACHE_ENTRIES)
    return stored


def _replace_traffic(conn: psycopg.Connection, file_id: int, traffic: dict) -> None:
    """Swap this object's share of traffic_hourly for its new one in one ordered
    upsert (ordered so that concurrent loads lock rollup rows in the same order)."""
    load_id = secrets.randbits(62)
    with conn.cursor().copy(
        "COPY file_traffic (file_id, load_id, hour, host, edge, status_class, kind,"
        " requests, bytes, hits) FROM STDIN"
    ) as copy:
        for (date, hour, host, edge, status_class, kind), counts in traffic.items():
            copy.write_row(
                (
                    file_id,
                    load_id,
                    f"{date} {hour}:00:00+00",
                    host,
                    edge,
                    STATUS_CLASSES[status_class] if status_class < 10 else "other",
                    kind,
                    *counts,
                )
            )
    emptied = conn.execute(
        """WITH old AS (
               DELETE FROM file_traffic WHERE file_id = %(file)s AND load_id <> %(load)s
               RETURNING hour, host, edge, status_class, kind, -requests AS requests,
                         -bytes AS bytes, -hits AS hits),
           new AS (
               SELECT hour, host, edge, status_class, kind, requests, bytes, hits FROM file_traffic
               WHERE file_id = %(file)s AND load_id = %(load)s),
           delta AS (
               SELECT hour, host, edge, status_class, kind,
                      sum(requests) AS requests, sum(bytes) AS bytes, sum(hits) AS hits
               FROM (SELECT * FROM old UNION ALL SELECT * FROM new) AS changes
               GROUP BY hour, host, edge, status_class, kind
               HAVING sum(requests) <> 0 OR sum(bytes) <> 0 OR sum(hits) <> 0)
           INSERT INTO traffic_hourly AS t
           SELECT * FROM delta ORDER BY hour, host, edge, status_class, kind
           ON CONFLICT (hour, host, edge, status_class, kind) DO UPDATE
           SET requests = t.requests + excluded.requests, bytes = t.bytes + excluded.bytes,
               hits = t.hits + excluded.hits
           RETURNING hour, host, edge, status_class, kind, requests""",
        {"file": file_id, "load": load_id},
    ).fetchall()
    for *key, requests in emptied:
        if requests == 0:
            conn.execute(
                """DELETE FROM traffic_hourly WHERE hour = %s AND host = %s AND edge = %s
                   AND status_class = %s AND kind = %s AND requests = 0""",
                key,
            )


# ---------------------------------------------------------------- partitions


def known_months(conn: psycopg.Connection) -> set[str]:
    """Months ('YYYY-MM') that have a page_views partition."""
    rows = conn.execute(
        """SELECT c.relname FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'page_views'::regclass"""
    ).fetchall()
    months = set()
    for (name,) in rows:
        year, month = name.removeprefix("page_views_").split("_")
        months.add(f"{year}-{month}")
    return months


def ensure_partitions(conn: psycopg.Connection, months: Iterable[str]) -> None:
    """Create monthly page_views partitions, each in its own short transaction
    (creating one locks the parent table); a concurrent creator is fine."""
    for month in sorted(months):
        year, mon = (int(part) for part in month.split("-"))
        following = f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"
        name = sql.Identifier(f"page_views_{year:04d}_{mon:02d}")
        statement = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF page_views FOR VALUES FROM ({}) TO ({})"
        ).format(
            name, sql.Literal(f"{month}-01 00:00:00+00"), sql.Literal(f"{following}-01 00:00:00+00")
        )
        try:
            with conn.transaction():
                conn.execute(statement)
        except (errors.DuplicateTable, errors.UniqueViolation):
            pass
