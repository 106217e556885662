"""Reconcile S3 with the log_files ledger: list log objects under prefixes, within
an optional date range taken from their keys, and load what is missing, failed
(below a retry limit) or changed, either by enqueueing S3-event-shaped messages
for the ingest function or by ingesting directly (local runs).

Listing goes page by page in key order and can stop at a deadline: the cursor
(prefix index and the last key accounted for) continues it in a later call, so
every key is seen exactly once however many calls it takes."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

import psycopg

from . import aws
from .ingest import Pipeline, ingest_in_run
from .s3 import parse_uri, s3_source

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # ListObjectsV2 maximum
SQS_BATCH = 10  # SendMessageBatch maximum
MAX_ATTEMPTS = 3
STALE_HOURS = 24.0
SEND_TRIES = 3

# Reasons an object is (re)loaded, in the order the planner checks them.
REASONS = ("missing", "changed", "failed", "stale", "reprocess")

# ------------------------------------------------------------------ key dates

# Hive-style and plain partitioned paths of standard logging v2, then the file
# name of legacy logs (<DistributionID>.YYYY-MM-DD-HH.<unique>.gz, which v2 keeps).
_LAYOUTS = (
    (
        "hive",
        re.compile(
            r"^(?P<base>(?:.*/)?)year=(?P<y>\d{4})/month=(?P<m>\d{2})/day=(?P<d>\d{2})/"
            r"(?:hour=(?P<h>\d{2})/)?[^/]+$"
        ),
    ),
    (
        "path",
        re.compile(
            r"^(?P<base>(?:.*/)?)(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?:(?P<h>\d{2})/)?[^/]+$"
        ),
    ),
    (
        "legacy",
        re.compile(
            r"^(?P<base>(?:.*/)?[^/]*\.)(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})-(?P<h>\d{2})\.[^/]*$"
        ),
    ),
)
_FORMATS = {
    "hive": ("year={:04d}/month={:02d}/day={:02d}", "/hour={:02d}"),
    "path": ("{:04d}/{:02d}/{:02d}", "/{:02d}"),
    "legacy": ("{:04d}-{:02d}-{:02d}", "-{:02d}"),
}


@dataclass(frozen=True)
class KeyDate:
    """The hours (UTC) an object's key says it covers, and where in the key they are."""

    first: datetime
    last: datetime
    layout: str
    match: re.Match = field(repr=False, compare=False)

    def overlaps(self, since: datetime | None, until: datetime | None) -> bool:
        return (since is None or self.last >= since) and (until is None or self.first <= until)


def key_date(key: str) -> KeyDate | None:
    """The date a log object's key carries, or None when it carries none."""
    for layout, pattern in _LAYOUTS:
        match = pattern.match(key)
        if match is None:
            continue
        y, m, d, h = (match.group(g) for g in "ymdh")
        try:
            first = datetime(int(y), int(m), int(d), int(h or 0), tzinfo=UTC)
        except ValueError:
            return None
        last = first if h is not None else first + timedelta(hours=23)
        return KeyDate(first, last, layout, match)
    return None


def _skip_past(prefix: str) -> str:
    """The smallest string greater than every key that starts with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def skip_to(key: str, since: datetime | None, until: datetime | None) -> str | None:
    """A StartAfter key that skips the listing ahead when `key` is outside the range
    and its layout says which following keys are too (zero-padded dates sort in
    time order under the same base); None when nothing can be skipped."""
    date = key_date(key)
    if date is None:
        return None
    match = date.match
    hourly = match.group("h") is not None
    if since is not None and date.last < since:
        day, hour = _FORMATS[date.layout]
        stamp = day.format(since.year, since.month, since.day)
        if hourly:
            stamp += hour.format(since.hour)
        return match.group("base") + stamp
    if until is not None and date.first > until:
        # Skip past the coarsest period (year, month, day, hour) that starts after until.
        y, m, d, h = (int(match.group(g) or 0) for g in "ymdh")
        periods = [("y", (y, 1, 1, 0)), ("m", (y, m, 1, 0)), ("d", (y, m, d, 0))]
        if hourly:
            periods.append(("h", (y, m, d, h)))
        for group, start in periods:
            if datetime(*start, tzinfo=UTC) > until:
                return _skip_past(key[: match.end(group) + 1])
    return None


def parse_time(value: str | datetime | None, *, end: bool = False) -> datetime | None:
    """A range bound as a UTC hour. A bare date means its first hour, or with
    `end` its last hour (so `until=2024-12-31` includes that whole day)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        bare_date = len(value) == 10
        value = datetime.fromisoformat(value)
        if bare_date and end:
            value += timedelta(hours=23)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# ------------------------------------------------------------------ requests


@dataclass
class Request:
    """What to reconcile. JSON-able (see as_dict) so a continuation can carry it."""

    prefixes: list[str]
    since: datetime | None = None
    until: datetime | None = None
    reprocess: bool = False
    max_attempts: int = MAX_ATTEMPTS
    # Leave objects younger than this to their own S3 event (the scheduled run).
    min_age_minutes: float = 0
    # A queued row this old lost its message: queue it again (counted as an attempt).
    stale_hours: float = STALE_HOURS

    def __post_init__(self):
        if isinstance(self.prefixes, str):
            self.prefixes = [self.prefixes]
        if not self.prefixes:
            raise ValueError("no prefixes to backfill")
        for uri in self.prefixes:
            parse_uri(uri)
        self.since = parse_time(self.since)
        self.until = parse_time(self.until, end=True)
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since {self.since} is after until {self.until}")

    def as_dict(self) -> dict:
        data = asdict(self)
        for name in ("since", "until"):
            data[name] = data[name].isoformat() if data[name] else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> Request:
        names = cls.__dataclass_fields__
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError(f"unknown backfill request fields: {sorted(unknown)}")
        return cls(**data)


def default_prefixes(env: Mapping[str, str] | None = None) -> list[str]:
    """LOG_PREFIXES (`s3://bucket/prefix,...`), else LOG_BUCKET with LOG_PREFIX."""
    env = os.environ if env is None else env
    listed = [p.strip() for p in env.get("LOG_PREFIXES", "").split(",") if p.strip()]
    if listed:
        return listed
    bucket = env.get("LOG_BUCKET", "").strip()
    return [f"s3://{bucket}/{env.get('LOG_PREFIX', '').strip().lstrip('/')}"] if bucket else []


@dataclass
class Cursor:
    """Where listing stands: prefixes before `prefix` are done, and so is every key
    of that prefix up to and including `start_after`."""

    prefix: int = 0
    start_after: str | None = None


@dataclass
class Result:
    counts: Counter
    cursor: Cursor | None  # None: everything listed
    request: Request

    @property
    def complete(self) -> bool:
        return self.cursor is None

    def continuation(self, hop: int = 1) -> dict | None:
        """The event that continues this run (see functions/backfill), or None."""
        if self.cursor is None:
            return None
        return {
            "continuation": {
                "request": self.request.as_dict(),
                "cursor": asdict(self.cursor),
                "hop": hop,
            }
        }


# ------------------------------------------------------------------ listing


@dataclass(frozen=True)
class Listed:
    key: str
    etag: str
    size: int


@dataclass
class Page:
    objects: list[Listed]  # in range and old enough
    next_start_after: str | None  # None: this was the prefix's last page


def list_pages(
    bucket: str,
    prefix: str,
    request: Request,
    counts: Counter,
    *,
    start_after: str | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[Page]:
    """ListObjectsV2 page by page from start_after, keeping the objects in the
    request's range and skipping ahead where the key layout allows."""
    s3 = aws.client("s3")
    newest = datetime.now(UTC) - timedelta(minutes=request.min_age_minutes)
    dated = request.since is not None or request.until is not None
    while True:
        params = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        if start_after:
            params["StartAfter"] = start_after
        response = s3.list_objects_v2(**params)
        contents = response.get("Contents", [])
        counts["listed"] += len(contents)
        objects = []
        for item in contents:
            key = item["Key"]
            if key.endswith("/"):
                continue
            if dated:
                date = key_date(key)
                if date is None:
                    counts["undated"] += 1
                    continue
                if not date.overlaps(request.since, request.until):
                    counts["out_of_range"] += 1
                    continue
            if request.min_age_minutes and item["LastModified"] > newest:
                counts["too_new"] += 1
                continue
            objects.append(Listed(key, item["ETag"].strip('"'), item["Size"]))
        if not response.get("IsTruncated") or not contents:
            yield Page(objects, None)
            return
        start_after = contents[-1]["Key"]
        target = skip_to(start_after, request.since, request.until)
        if target is not None and target > start_after:
            counts["skips"] += 1
            start_after = target
        yield Page(objects, start_after)


# ------------------------------------------------------------------ planning


@dataclass(frozen=True)
class Planned:
    key: str
    etag: str
    size: int
    reason: str  # one of REASONS
    # What the ledger held when planned; claiming succeeds only if it still does.
    seen_status: str | None = None
    seen_etag: str | None = None
    seen_at: datetime | None = None
    give_up: bool = False  # stale and out of attempts: mark failed, do not queue


def decide(
    conn: psycopg.Connection,
    bucket: str,
    objects: list[Listed],
    request: Request,
    counts: Counter,
    *,
    requeue_stale: bool = True,
) -> list[Planned]:
    """Which objects to load, by comparing them with their ledger rows. Stale
    queued rows are requeued only when `requeue_stale` (the queue is idle: while
    it has a backlog, their messages may simply be waiting)."""
    if not objects:
        return []
    with conn.transaction():
        rows = conn.execute(
            """SELECT key, status, etag, attempts, greatest(queued_at, processed_at),
                      coalesce(greatest(queued_at, processed_at) < now() - %s, true), final
               FROM log_files WHERE bucket = %s AND key = ANY(%s)""",
            (timedelta(hours=request.stale_hours), bucket, [o.key for o in objects]),
        ).fetchall()
    ledger = {row[0]: row[1:] for row in rows}
    planned = []
    for obj in objects:
        row = ledger.get(obj.key)
        if row is None:
            planned.append(Planned(obj.key, obj.etag, obj.size, "missing"))
            continue
        status, etag, attempts, touched, stale, final = row
        changed = etag is not None and etag != obj.etag
        reason = give_up = None
        if status == "done":
            reason = "changed" if changed else "reprocess" if request.reprocess else None
            if reason is None:
                counts["skipped_done"] += 1
        elif status == "gone":  # listed again: it was put back
            reason = "missing"
        elif status == "failed":
            if changed:
                reason = "changed"
            elif final and not request.reprocess:  # no retry can change the outcome
                counts["skipped_final"] += 1
            elif attempts < request.max_attempts:
                reason = "failed"
            elif request.reprocess:
                reason = "reprocess"
            else:
                counts["given_up"] += 1
        elif stale and requeue_stale:  # queued or processing, and its message is gone
            reason, give_up = "stale", attempts + 1 >= request.max_attempts
        else:
            counts["skipped_in_flight"] += 1
        if reason:
            planned.append(
                Planned(obj.key, obj.etag, obj.size, reason, status, etag, touched, bool(give_up))
            )
    return planned


def claim(conn: psycopg.Connection, bucket: str, planned: list[Planned]) -> list[Planned]:
    """Mark planned objects queued in the ledger, in one transaction, and return
    those claimed. A row changed since it was planned (an ingest finished, another
    planner claimed it) or locked right now (an ingest is loading it) is left
    alone, so nothing an ingest wrote is overwritten. Stale rows out of attempts
    become failed instead, with a reason for a person to read."""
    new = [p for p in planned if p.seen_status is None]
    old = [p for p in planned if p.seen_status is not None]
    claimed: set[str] = set()
    with conn.transaction():
        if new:
            # Waits for (and then yields to) an ingest inserting the same key right now.
            # Keys come in listing order, so concurrent planners lock in the same order.
            rows = conn.execute(
                """INSERT INTO log_files (bucket, key, etag, size, status, queued_at)
                   SELECT %s, key, etag, size, 'queued', now()
                   FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS t(key, etag, size)
                   ON CONFLICT (bucket, key) DO NOTHING
                   RETURNING key""",
                (bucket, [p.key for p in new], [p.etag for p in new], [p.size for p in new]),
            ).fetchall()
            claimed.update(row[0] for row in rows)
        if old:
            rows = conn.execute(
                """WITH wanted AS (
                       SELECT * FROM unnest(%(keys)s::text[], %(etags)s::text[],
                           %(sizes)s::bigint[], %(statuses)s::text[], %(seen_etags)s::text[],
                           %(seen_at)s::timestamptz[], %(reasons)s::text[], %(give_up)s::bool[])
                       AS w(key, etag, size, seen_status, seen_etag, seen_at, reason, give_up)),
                   locked AS (
                       SELECT f.file_id, w.* FROM log_files f JOIN wanted w
                       ON f.bucket = %(bucket)s AND f.key = w.key
                       WHERE f.status = w.seen_status
                         AND f.etag IS NOT DISTINCT FROM w.seen_etag
                         AND greatest(f.queued_at, f.processed_at)
                             IS NOT DISTINCT FROM w.seen_at
                       FOR UPDATE OF f SKIP LOCKED)
                   UPDATE log_files f SET
                       status = CASE WHEN l.give_up THEN 'failed' ELSE 'queued' END,
                       reason = CASE WHEN l.give_up
                           THEN 'queued ' || f.attempts + 1 || ' times without finishing;'
                                ' see the ingest dead-letter queue and errors'
                           ELSE f.reason END,
                       attempts = CASE WHEN l.reason = 'changed' THEN 0
                           WHEN l.reason = 'stale' THEN f.attempts + 1
                           ELSE f.attempts END,
                       etag = l.etag, size = l.size,
                       queued_at = CASE WHEN l.give_up THEN f.queued_at ELSE now() END,
                       processed_at = CASE WHEN l.give_up THEN now() ELSE f.processed_at END
                   FROM locked l WHERE f.file_id = l.file_id
                   RETURNING f.key""",
                {
                    "bucket": bucket,
                    "keys": [p.key for p in old],
                    "etags": [p.etag for p in old],
                    "sizes": [p.size for p in old],
                    "statuses": [p.seen_status for p in old],
                    "seen_etags": [p.seen_etag for p in old],
                    "seen_at": [p.seen_at for p in old],
                    "reasons": [p.reason for p in old],
                    "give_up": [p.give_up for p in old],
                },
            ).fetchall()
            claimed.update(row[0] for row in rows)
    return [p for p in planned if p.key in claimed]


# ------------------------------------------------------------------ sending


class EnqueueError(RuntimeError):
    pass


def message_body(bucket: str, key: str, etag: str | None = None, size: int | None = None) -> str:
    """An SQS message body shaped like an S3 event notification naming one object
    (key URL-encoded as S3 does), which the ingest function reads as it reads S3's."""
    obj: dict = {"key": quote_plus(key, safe="/")}
    if etag:
        obj["eTag"] = etag
    if size is not None:
        obj["size"] = size
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Backfill",
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj},
    }
    return json.dumps({"Records": [record]})


def queue_is_idle(queue_url: str) -> bool:
    """No message waiting, in flight or delayed (approximately, as SQS counts)."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return not any(int(value) for value in attributes.values())


def send(queue_url: str, bucket: str, objects: list[Planned]) -> int:
    """One message per object, in SendMessageBatch calls of 10; entries that fail
    are retried, and an EnqueueError is raised if some still fail (their ledger
    rows stay queued and are requeued once stale)."""
    sqs = aws.client("sqs")
    for start in range(0, len(objects), SQS_BATCH):
        chunk = objects[start : start + SQS_BATCH]
        entries = [
            {"Id": str(i), "MessageBody": message_body(bucket, o.key, o.etag, o.size)}
            for i, o in enumerate(chunk)
        ]
        for _ in range(SEND_TRIES):
            failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed")
            if not failed:
                break
            ids = {f["Id"] for f in failed}
            entries = [e for e in entries if e["Id"] in ids]
        else:
            raise EnqueueError(f"SQS refused {len(entries)} messages: {failed[0]}")
    return len(objects)


# ------------------------------------------------------------------ running


ProgressCallback = Callable[[Mapping[str, int]], None]


def backfill(
    conn: psycopg.Connection,
    request: Request,
    *,
    queue_url: str | None = None,
    pipeline: Pipeline | None = None,
    cursor: Cursor | None = None,
    deadline: float | None = None,
    page_size: int = PAGE_SIZE,
    on_progress: ProgressCallback | None = None,
) -> Result:
    """Reconcile the request's prefixes with the ledger, from `cursor` on.

    With queue_url, claim each page's objects in the ledger (status queued) and
    send them to the ingest queue; without, ingest them here one by one (a
    pipeline is built if none is given). Stops once time.monotonic() passes
    `deadline` (checked after each page, so every call makes progress) and
    returns the cursor to continue from. on_progress gets the running counts:
    listed, planned, enqueued (queue) or loaded/load_failed (direct), and the
    per-reason and skip counts."""
    counts: Counter = Counter()
    cursor = cursor or Cursor()
    if queue_url is None and pipeline is None:
        pipeline = Pipeline()
    requeue_stale = queue_url is None or queue_is_idle(queue_url)
    given = conn
    try:
        for index in range(cursor.prefix, len(request.prefixes)):
            bucket, prefix = parse_uri(request.prefixes[index])
            start_after = cursor.start_after if index == cursor.prefix else None
            pages = list_pages(
                bucket, prefix, request, counts, start_after=start_after, page_size=page_size
            )
            for page in pages:
                planned = decide(
                    conn, bucket, page.objects, request, counts, requeue_stale=requeue_stale
                )
                counts.update(p.reason for p in planned)
                counts["planned"] += len(planned)
                if queue_url is not None:
                    _enqueue(conn, queue_url, bucket, planned, counts)
                else:
                    conn = _ingest_here(conn, bucket, planned, pipeline, counts, on_progress)
                if on_progress:
                    on_progress(counts)
                if page.next_start_after is not None:
                    position = Cursor(index, page.next_start_after)
                elif index + 1 < len(request.prefixes):
                    position = Cursor(index + 1, None)
                else:
                    position = None
                if position and deadline is not None and time.monotonic() >= deadline:
                    return Result(counts, position, request)
        return Result(counts, None, request)
    finally:
        if conn is not given:  # a new connection replaced one the server dropped
            conn.close()


def retry_from_ledger(
    conn: psycopg.Connection, request: Request, queue_url: str, *, limit: int = PAGE_SIZE
) -> Counter:
    """Queue again, whatever their date, the objects under the request's prefixes
    that failed below the attempt limit or whose queued message was lost (stale):
    a scheduled run lists only recent keys, and this keeps the promise that a
    failure is retried by the next scheduled runs, history included. At most
    `limit` objects per prefix per call."""
    counts: Counter = Counter()
    idle = queue_is_idle(queue_url)
    for uri in request.prefixes:
        bucket, prefix = parse_uri(uri)
        with conn.transaction():
            rows = conn.execute(
                """SELECT key, etag, size FROM log_files
                   WHERE bucket = %s AND starts_with(key, %s)
                     AND ((status = 'failed' AND NOT final AND attempts < %s)
                          OR (status IN ('queued', 'processing') AND coalesce(
                              greatest(queued_at, processed_at) < now() - %s, true)))
                   ORDER BY key LIMIT %s""",
                (bucket, prefix, request.max_attempts, timedelta(hours=request.stale_hours), limit),
            ).fetchall()
        objects = [Listed(key, etag, size) for key, etag, size in rows]
        planned = decide(conn, bucket, objects, request, counts, requeue_stale=idle)
        counts.update(p.reason for p in planned)
        _enqueue(conn, queue_url, bucket, planned, counts)
    return counts


def _enqueue(conn, queue_url, bucket, planned, counts) -> None:
    claimed = claim(conn, bucket, planned)
    counts["lost_race"] += len(planned) - len(claimed)
    abandoned = [p for p in claimed if p.give_up]
    counts["abandoned"] += len(abandoned)
    for p in abandoned:
        log.warning("gave up on s3://%s/%s: queued repeatedly without finishing", bucket, p.key)
    counts["enqueued"] += send(queue_url, bucket, [p for p in claimed if not p.give_up])


def _ingest_here(conn, bucket, planned, pipeline, counts, on_progress) -> psycopg.Connection:
    """Load the planned objects one by one; the connection to go on with."""
    for p in planned:
        conn, result = ingest_in_run(conn, s3_source(bucket, p.key, p.etag, p.size), pipeline)
        if result.status == "done":
            counts["loaded"] += 1
            counts["lines"] += result.lines
        elif result.status == "gone":
            counts["gone"] += 1
        else:
            log.warning("could not load s3://%s/%s: %s", bucket, p.key, result.reason)
            counts["load_failed"] += 1
        if on_progress:
            on_progress(counts)
    return conn


# ------------------------------------------------------------------ status


def status(conn: psycopg.Connection, *, max_attempts: int = MAX_ATTEMPTS, limit: int = 100) -> dict:
    """The ledger at a glance: objects and lines by status, the oldest queued
    object, and the failures (newest first) with their reason, attempts and
    whether a scheduled run will still retry them."""
    with conn.transaction():
        by_status = {
            row[0]: {"objects": row[1], "lines": row[2]}
            for row in conn.execute(
                """SELECT status, count(*), coalesce(sum(lines), 0) FROM log_files
                   GROUP BY status ORDER BY status"""
            )
        }
        oldest_queued = conn.execute(
            "SELECT min(queued_at) FROM log_files WHERE status = 'queued'"
        ).fetchone()[0]
        failures = [
            {
                "bucket": bucket,
                "key": key,
                "reason": reason,
                "attempts": attempts,
                "failed_at": failed_at.isoformat() if failed_at else None,
                "will_retry": not final and attempts < max_attempts,
            }
            for bucket, key, reason, attempts, failed_at, final in conn.execute(
                """SELECT bucket, key, reason, attempts, processed_at, final FROM log_files
                   WHERE status = 'failed'
                   ORDER BY processed_at DESC NULLS LAST, bucket, key LIMIT %s""",
                (limit,),
            )
        ]
    return {
        "total": sum(s["objects"] for s in by_status.values()),
        "by_status": by_status,
        "oldest_queued_at": oldest_queued.isoformat() if oldest_queued else None,
        "failed": by_status.get("failed", {}).get("objects", 0),
        "failures": failures,
    }
