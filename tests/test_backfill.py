"""The backfill planner against moto S3 + SQS and a real PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

import boto3
import psycopg
import pytest
from moto import mock_aws

from cflogs import aws, backfill, ingest
from cflogs.backfill import Cursor, Request, key_date, skip_to
from cflogs.config import Settings
from cflogs.s3 import parse_uri, s3_source
from tests.logfiles import log_bytes, record

BUCKET = "cflogs-test-logs"


@pytest.fixture
def cloud(env):
    """moto S3 and SQS: a log bucket and an ingest queue."""
    with mock_aws():
        aws.reset_clients()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        queue_url = boto3.client("sqs").create_queue(QueueName="ingest")["QueueUrl"]
        yield Cloud(s3, queue_url)
    aws.reset_clients()


class Cloud:
    def __init__(self, s3, queue_url: str):
        self.s3 = s3
        self.queue_url = queue_url

    def put(self, key: str, ts: str = "2024-03-01 10:00:00", body: bytes | None = None) -> str:
        if body is None:
            body = log_bytes([record(ts=ts, path=f"/{key}")])
        return self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')

    def drain(self) -> list[tuple[str, str]]:
        """Every message on the ingest queue (deleted), as (bucket, key)."""
        sqs = aws.client("sqs")
        found = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.extend(objects_in(message["Body"]))
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )


def objects_in(body: str) -> list[tuple[str, str]]:
    """What an S3-event-shaped message names, read the way S3 events are read."""
    event = json.loads(body)
    return [
        (r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]))
        for r in event["Records"]
        if r["eventSource"] == "aws:s3"
    ]


@pytest.fixture(scope="module")
def pipeline():
    return ingest.Pipeline(Settings(visitor_id_secret="test-visitor-id-key-0123456789abcdef"))


def load(conn, key: str, pipeline) -> ingest.FileResult:
    return ingest.ingest(conn, s3_source(BUCKET, key), pipeline)


def fail_transiently(conn, key: str) -> None:
    """Note a failure as the ingest function does for one a retry may cure."""
    ingest.record_error(conn, s3_source(BUCKET, key), ConnectionResetError("reset by peer"))


def ledger(conn) -> dict[str, tuple]:
    rows = conn.execute("SELECT key, status, attempts, etag FROM log_files ORDER BY key")
    return {key: (status, attempts, etag) for key, status, attempts, etag in rows}


def run_to_end(conn, request, **kwargs) -> tuple[backfill.Counter, int]:
    """Call backfill with its cursor until it completes; returns totals and calls."""
    totals, cursor, calls = backfill.Counter(), None, 0
    while True:
        result = backfill.backfill(conn, request, cursor=cursor, **kwargs)
        totals.update(result.counts)
        calls += 1
        if result.complete:
            return totals, calls
        assert calls < 10_000
        cursor = result.cursor


# ------------------------------------------------------------------ key dates


@pytest.mark.parametrize(
    ("key", "layout", "first", "hours"),
    [
        ("logs/E2EXAMPLE.2024-01-05-03.a1b2c3d4.gz", "legacy", "2024-01-05T03", 1),
        ("E2EXAMPLE.2019-12-31-23.a1b2c3d4", "legacy", "2019-12-31T23", 1),
        ("v2/E2EXAMPLE/2025/02/16/10/E2EXAMPLE.2025-02-16-10.ab12.gz", "path", "2025-02-16T10", 1),
        ("v2/E2EXAMPLE/2025/02/16/E2EXAMPLE.2025-02-16-10.ab12.gz", "path", "2025-02-16T00", 24),
        (
            "AWSLogs/111122223333/CloudFront/DistributionId=E2EXAMPLE/year=2025/month=02/"
            "day=16/hour=10/E2EXAMPLE.2025-02-16-10.ab12.gz",
            "hive",
            "2025-02-16T10",
            1,
        ),
        ("h/year=2025/month=02/day=16/part-0001.parquet", "hive", "2025-02-16T00", 24),
        # v2 JSON and Parquet objects; a suffix template with the date parts apart
        # still dates its objects by their names
        (
            "v2/E2EXAMPLE/2025/02/16/10/E2EXAMPLE.2025-02-16-10.c3d4.json.gz",
            "path",
            "2025-02-16T10",
            1,
        ),
        (
            "v2/2025/02/16/E2EXAMPLE/10/E2EXAMPLE.2025-02-16-10.e5.parquet",
            "legacy",
            "2025-02-16T10",
            1,
        ),
    ],
)
def test_key_date_reads_every_layout(key, layout, first, hours):
    date = key_date(key)
    assert date.layout == layout
    assert date.first == datetime.fromisoformat(first).replace(tzinfo=UTC)
    assert date.last - date.first == timedelta(hours=hours - 1)


@pytest.mark.parametrize(
    "key",
    ["logs/readme.txt", "logs/E2EXAMPLE.2024-13-05-03.a.gz", "logs/2024/02/30/x.gz", "logs/"],
)
def test_key_date_none_for_undated_or_impossible_keys(key):
    assert key_date(key) is None


def test_range_bounds():
    request = Request(["s3://b/p"], since="2024-01-01", until="2024-12-31")
    assert request.since == datetime(2024, 1, 1, tzinfo=UTC)
    assert request.until == datetime(2024, 12, 31, 23, tzinfo=UTC)
    assert Request.from_dict(request.as_dict()) == request
    hour = Request("s3://b/p", since="2024-01-01T05", until="2024-01-02T07:30")
    assert hour.prefixes == ["s3://b/p"]
    assert (hour.since.hour, hour.until.hour, hour.until.minute) == (5, 7, 0)
    with pytest.raises(ValueError):
        Request(["s3://b/p"], since="2024-02-01", until="2024-01-01")
    with pytest.raises(ValueError):
        Request(["b/p"])
    with pytest.raises(ValueError):
        Request.from_dict({"prefixes": ["s3://b/p"], "sinse": "2024-01-01"})


def test_parse_uri_and_default_prefixes():
    assert parse_uri("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert parse_uri("s3://bucket") == ("bucket", "")
    env = {"LOG_PREFIXES": "s3://a/x/, s3://b/y/"}
    assert backfill.default_prefixes(env) == ["s3://a/x/", "s3://b/y/"]
    assert backfill.default_prefixes({"LOG_BUCKET": "a", "LOG_PREFIX": "/logs/"}) == [
        "s3://a/logs/"
    ]
    assert backfill.default_prefixes({}) == []


def test_skip_to_never_skips_a_key_in_range():
    """Whatever key the listing stands on, the keys it would skip are all out of range."""
    since, until = datetime(2024, 3, 10, 5, tzinfo=UTC), datetime(2024, 5, 2, 7, tzinfo=UTC)
    keys = sorted(all_layout_keys(datetime(2023, 11, 1, tzinfo=UTC), days=240, step_hours=13))
    skipped = 0
    for position, key in enumerate(keys):
        target = skip_to(key, since, until)
        if target is None:
            continue
        assert target > key
        for later in keys[position + 1 :]:
            if later > target:
                break
            skipped += 1
            date = key_date(later)
            assert date is None or not date.overlaps(since, until), (key, target, later)
    assert skipped > 100


def all_layout_keys(start: datetime, days: int, step_hours: int) -> list[str]:
    keys = []
    hour = start
    while hour < start + timedelta(days=days):
        stamp = hour.strftime("%Y-%m-%d-%H")
        for dist in ("E1AAAA", "E2BBBB"):
            keys.append(f"legacy/{dist}.{stamp}.{hour.minute:02d}ab.gz")
            keys.append(f"v2/{dist}/{hour:%Y/%m/%d/%H}/{dist}.{stamp}.cd.gz")
            keys.append(
                f"hive/DistributionId={dist}/year={hour:%Y}/month={hour:%m}/day={hour:%d}/"
                f"hour={hour:%H}/{dist}.{stamp}.ef.gz"
            )
            keys.append(f"daily/{dist}/{hour:%Y/%m/%d}/{dist}.{stamp}.gh.gz")
        hour += timedelta(hours=step_hours)
    return keys


# ------------------------------------------------------------------ listing


def test_listing_a_range_finds_exactly_the_keys_in_it_and_prunes(cloud, conn):
    keys = all_layout_keys(datetime(2023, 12, 20, tzinfo=UTC), days=120, step_hours=17)
    keys += ["legacy/notes.txt", "v2/E1AAAA/readme.md"]
    for key in keys:
        cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    request = Request(
        [f"s3://{BUCKET}/legacy/", f"s3://{BUCKET}/v2/", f"s3://{BUCKET}/hive/"]
        + [f"s3://{BUCKET}/daily/"],
        since="2024-02-01T06",
        until="2024-02-20",
    )
    wanted = sorted(
        k for k in keys if (d := key_date(k)) and d.overlaps(request.since, request.until)
    )
    totals, calls = run_to_end(conn, request, queue_url=cloud.queue_url, page_size=9, deadline=0)
    sent = [key for _, key in cloud.drain()]
    assert sorted(sent) == wanted
    assert len(sent) == len(set(sent))
    assert totals["enqueued"] == totals["missing"] == len(wanted)
    assert totals["skips"] > 0
    assert totals["listed"] < len(keys) / 2  # pruned, not filtered
    assert calls > 10


def test_continuation_covers_every_key_exactly_once(cloud, conn):
    keys = [
        f"a/E1.2024-01-{d:02d}-{h:02d}.x{n}.gz" for d in (1, 2) for h in range(24) for n in (1, 2)
    ]
    keys += [f"b/{n:04d}.gz" for n in range(101)]
    for key in keys:
        cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    request = Request([f"s3://{BUCKET}/a/", f"s3://{BUCKET}/b/"])
    results = []
    cursor = None
    while True:
        result = backfill.backfill(
            conn, request, queue_url=cloud.queue_url, cursor=cursor, page_size=10, deadline=0
        )
        results.append(result)
        if result.complete:
            break
        # The cursor travels as JSON in the follow-up event.
        follow = json.loads(json.dumps(result.continuation()))["continuation"]
        cursor = Cursor(**follow["cursor"])
        assert Request.from_dict(follow["request"]) == request
    sent = [key for _, key in cloud.drain()]
    assert sorted(sent) == sorted(keys)
    assert len(sent) == len(keys)
    assert len(results) == 96 // 10 + 1 + 101 // 10 + 1
    assert results[-1].continuation() is None


def test_deadline_stops_between_pages_only(cloud, conn):
    for n in range(25):
        cloud.s3.put_object(Bucket=BUCKET, Key=f"p/{n:03d}.gz", Body=b"x")
    request = Request([f"s3://{BUCKET}/p/"])
    far = backfill.time.monotonic() + 3600
    result = backfill.backfill(conn, request, queue_url=cloud.queue_url, page_size=10, deadline=far)
    assert result.complete and result.counts["enqueued"] == 25
    assert len(cloud.drain()) == 25


# ------------------------------------------------------------------ planning


def test_planner_enqueues_missing_failed_changed_and_stale_only(cloud, conn, pipeline):
    legacy = [f"cf/E2EXAMPLE.2024-03-01-{h:02d}.a{h}.gz" for h in range(6)]
    v2_path = [f"cf/E3V2/2024/03/01/{h:02d}/E3V2.2024-03-01-{h:02d}.b{h}.gz" for h in range(4)]
    v2_hive = [
        f"cf/AWSLogs/1/CloudFront/DistributionId=E4H/year=2024/month=03/day=01/hour={h:02d}/"
        f"E4H.2024-03-01-{h:02d}.c{h}.gz"
        for h in range(4)
    ]
    out_of_range = ["cf/E2EXAMPLE.2024-02-27-10.z.gz", "cf/E3V2/2024/03/05/01/E3V2.z.gz"]
    for key in legacy + v2_path + v2_hive + out_of_range:
        cloud.put(key)

    done = [legacy[0], legacy[1], v2_path[0], v2_hive[0], v2_hive[1]]
    for key in done:
        assert load(conn, key, pipeline).status == "done"
    changed = legacy[1]  # loaded, then replaced by a new version of the object
    cloud.put(changed, body=log_bytes([record(ts="2024-03-01 01:20:00"), record()]))
    changed_hive = v2_hive[1]
    cloud.put(changed_hive, body=log_bytes([record(ts="2024-03-01 01:30:00")] * 2))
    poisoned = legacy[2]  # failed once, as a dropped connection fails it: retried
    fail_transiently(conn, poisoned)
    cloud.put(poisoned, body=b"not a log file\n")  # which the retry finds out
    hopeless = legacy[3]  # failed three times: left for a person
    for _ in range(3):
        fail_transiently(conn, hopeless)
    final = legacy[4]  # not a log file: failed for good at once, never retried
    cloud.put(final, body=b"still not a log file\n")
    assert load(conn, final, pipeline).status == "failed"
    in_flight, lost = v2_path[1], v2_path[2]  # queued now / a day and more ago
    conn.execute(
        """INSERT INTO log_files (bucket, key, status, queued_at) VALUES
           (%s, %s, 'queued', now()), (%s, %s, 'queued', now() - interval '25 hours')""",
        (BUCKET, in_flight, BUCKET, lost),
    )
    conn.commit()
    before = ledger(conn)

    request = Request([f"s3://{BUCKET}/cf/"], since="2024-03-01", until="2024-03-01")
    result = backfill.backfill(conn, request, queue_url=cloud.queue_url)

    missing = [legacy[5], v2_path[3], v2_hive[2], v2_hive[3]]
    expected = sorted(missing + [changed, changed_hive, poisoned, lost])
    sent = cloud.drain()
    assert sorted(key for _, key in sent) == expected
    assert {bucket for bucket, _ in sent} == {BUCKET}
    counts = result.counts
    assert (counts["missing"], counts["changed"], counts["failed"], counts["stale"]) == (4, 2, 1, 1)
    assert (counts["skipped_done"], counts["given_up"], counts["skipped_in_flight"]) == (3, 1, 1)
    assert counts["skipped_final"] == 1
    assert counts["out_of_range"] == 2 and counts["enqueued"] == len(expected)

    after = ledger(conn)
    assert {k for k, row in after.items() if row[0] == "queued"} == set(expected) | {in_flight}
    assert after[hopeless][:2] == ("failed", 3)
    assert after[poisoned][:2] == ("queued", 1)
    assert after[changed][:2] == ("queued", 0)  # a new version starts its attempts afresh
    assert after[lost][:2] == ("queued", 1)  # the lost message counts as an attempt
    assert after[changed][2] != before[changed][2]
    for key in (legacy[0], v2_path[0], v2_hive[0]):
        assert after[key] == before[key]

    summary = backfill.status(conn)
    assert summary["by_status"]["queued"]["objects"] == len(expected) + 1
    assert summary["oldest_queued_at"] is not None
    failures = sorted((f["key"], f["will_retry"]) for f in summary["failures"])
    assert failures == [(hopeless, False), (final, False)]
    assert summary["total"] == len(after)

    # Nothing has changed since: a second run sends nothing.
    again = backfill.backfill(conn, request, queue_url=cloud.queue_url)
    assert again.counts["enqueued"] == 0 and cloud.drain() == []
    assert again.counts["skipped_in_flight"] == len(expected) + 1

    # Loading what was sent, as the ingest function does, ends with all but the
    # hopeless and final objects done, and the poisoned one failed again, for good.
    for key in expected:
        load(conn, key, pipeline)
    loaded = ledger(conn)
    assert loaded[poisoned][:2] == ("failed", 2)
    others = set(legacy + v2_path + v2_hive) - {poisoned, hopeless, final, in_flight}
    assert {loaded[k][0] for k in others} == {"done"}


def test_reprocess_enqueues_everything_in_range_except_in_flight(cloud, conn, pipeline):
    keys = [f"r/E1.2024-05-0{d}-00.x.gz" for d in range(1, 6)]
    for d, key in enumerate(keys, 1):
        cloud.put(key, ts=f"2024-05-0{d} 00:05:00")
    for key in keys[:3]:
        load(conn, key, pipeline)
    cloud.put(keys[3], body=b"junk\n")
    for _ in range(3):
        load(conn, keys[3], pipeline)  # given up on, but reprocess means everything
    conn.execute(
        "INSERT INTO log_files (bucket, key, status, queued_at) VALUES (%s, %s, 'queued', now())",
        (BUCKET, keys[4]),
    )
    conn.commit()
    request = Request([f"s3://{BUCKET}/r/"], since="2024-05-02", until="2024-05-05", reprocess=True)
    result = backfill.backfill(conn, request, queue_url=cloud.queue_url)
    assert sorted(k for _, k in cloud.drain()) == keys[1:4]
    assert result.counts["reprocess"] == 3 and result.counts["skipped_in_flight"] == 1


def test_claim_leaves_rows_an_ingest_changed_or_holds(cloud, conn, pipeline, database_url):
    keys = [f"c/E1.2024-06-01-0{h}.x.gz" for h in range(3)]
    for key in keys:
        cloud.put(key, ts="2024-06-01 00:05:00")
    for key in keys:
        cloud.put(key, body=b"junk\n")
        load(conn, key, pipeline)  # failed, attempt 1
        cloud.put(key, ts="2024-06-01 00:05:00")
    request = Request([f"s3://{BUCKET}/c/"])
    counts = backfill.Counter()
    (page,) = backfill.list_pages(BUCKET, "c/", request, counts)
    planned = backfill.decide(conn, BUCKET, page.objects, request, counts)
    assert [p.reason for p in planned] == ["changed"] * 3

    # keys[0]: an ingest finished after planning; keys[1]: an ingest is loading it now.
    load(conn, keys[0], pipeline)
    with psycopg.connect(database_url) as other:
        other.execute("SELECT 1 FROM log_files WHERE key = %s FOR UPDATE", (keys[1],))
        claimed = run_with_timeout(lambda: backfill.claim(conn, BUCKET, planned), seconds=10)
        other.rollback()
    assert [p.key for p in claimed] == [keys[2]]
    rows = ledger(conn)
    assert rows[keys[0]][0] == "done" and rows[keys[1]][0] == "failed"
    assert rows[keys[2]][0] == "queued"


def run_with_timeout(func, seconds: float):
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(value=func()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "claim blocked on a row an ingest holds"
    return outcome["value"]


def test_stale_rows_out_of_attempts_become_failed_with_a_reason(cloud, conn):
    key = "s/E1.2024-07-01-00.x.gz"
    cloud.put(key)
    conn.execute(
        """INSERT INTO log_files (bucket, key, status, attempts, queued_at)
           VALUES (%s, %s, 'queued', 2, now() - interval '2 days')""",
        (BUCKET, key),
    )
    conn.commit()
    result = backfill.backfill(conn, Request([f"s3://{BUCKET}/s/"]), queue_url=cloud.queue_url)
    assert result.counts["abandoned"] == 1 and result.counts["enqueued"] == 0
    assert cloud.drain() == []
    summary = backfill.status(conn)
    assert summary["by_status"]["failed"]["objects"] == 1
    (failure,) = summary["failures"]
    assert failure["key"] == key and failure["attempts"] == 3 and not failure["will_retry"]
    assert "dead-letter" in failure["reason"]


def test_min_age_leaves_fresh_objects_to_their_event(cloud, conn):
    cloud.put("n/E1.2024-07-01-00.x.gz")
    request = Request([f"s3://{BUCKET}/n/"], min_age_minutes=15)
    result = backfill.backfill(conn, request, queue_url=cloud.queue_url)
    assert result.counts["too_new"] == 1 and cloud.drain() == []


def test_message_body_is_an_s3_event_with_an_encoded_key():
    key = "logs/with space/ü+plus=E1.2024-01-01-00.x.gz"
    event = json.loads(backfill.message_body("b", key, "abc", 12))
    (rec,) = event["Records"]
    assert rec["eventSource"] == "aws:s3" and rec["eventName"].startswith("ObjectCreated:")
    assert rec["s3"]["object"] == {
        "key": "logs/with+space/%C3%BC%2Bplus%3DE1.2024-01-01-00.x.gz",
        "eTag": "abc",
        "size": 12,
    }
    assert objects_in(json.dumps(event)) == [("b", key)]


def test_send_retries_refused_entries_then_raises(cloud, monkeypatch):
    sqs = aws.client("sqs")
    real = sqs.send_message_batch
    calls = []

    def flaky(**kwargs):
        calls.append(len(kwargs["Entries"]))
        response = real(**kwargs)
        if len(calls) == 1:  # the first call loses one entry
            lost = kwargs["Entries"][0]
            response["Failed"] = [{"Id": lost["Id"], "SenderFault": False, "Code": "x"}]
        return response

    monkeypatch.setattr(sqs, "send_message_batch", flaky)
    planned = [backfill.Planned(f"k{n}", "e", 1, "missing") for n in range(13)]
    assert backfill.send(cloud.queue_url, BUCKET, planned) == 13
    assert calls == [10, 1, 3]

    monkeypatch.setattr(
        sqs,
        "send_message_batch",
        lambda **kw: {"Failed": [{"Id": "0", "SenderFault": True, "Code": "x"}]},
    )
    with pytest.raises(backfill.EnqueueError):
        backfill.send(cloud.queue_url, BUCKET, planned[:1])


# ------------------------------------------------------------------ local mode


def test_local_mode_ingests_directly_with_progress(cloud, conn, pipeline):
    keys = [f"l/E1.2024-08-01-{h:02d}.x.gz" for h in range(5)]
    for key in keys:
        cloud.put(key, ts="2024-08-01 03:00:00")
    cloud.put(keys[2], body=b"poison\n")
    seen = []
    result = backfill.backfill(
        conn,
        Request([f"s3://{BUCKET}/l/"]),
        pipeline=pipeline,
        on_progress=lambda counts: seen.append(dict(counts)),
    )
    assert result.complete
    assert (result.counts["loaded"], result.counts["load_failed"]) == (4, 1)
    assert result.counts["lines"] == 4
    assert [c.get("loaded", 0) + c.get("load_failed", 0) for c in seen[:5]] == [1, 2, 3, 4, 5]
    rows = ledger(conn)
    assert [rows[k][0] for k in keys] == ["done", "done", "failed", "done", "done"]
    assert cloud.drain() == []


def test_two_planners_claim_a_stale_row_once(cloud, conn):
    key = "t/E1.2024-07-01-00.x.gz"
    etag = cloud.put(key)
    conn.execute(
        """INSERT INTO log_files (bucket, key, etag, status, queued_at)
           VALUES (%s, %s, %s, 'queued', now() - interval '2 days')""",
        (BUCKET, key, etag),
    )
    conn.commit()
    request = Request([f"s3://{BUCKET}/t/"])
    counts = backfill.Counter()
    (page,) = backfill.list_pages(BUCKET, "t/", request, counts)
    first = backfill.decide(conn, BUCKET, page.objects, request, counts)
    second = backfill.decide(conn, BUCKET, page.objects, request, counts)
    assert [p.reason for p in first] == [p.reason for p in second] == ["stale"]
    assert len(backfill.claim(conn, BUCKET, first)) == 1
    assert backfill.claim(conn, BUCKET, second) == []
    assert ledger(conn)[key][:2] == ("queued", 1)


def test_stale_rows_wait_while_the_queue_has_a_backlog(cloud, conn):
    key = "w/E1.2024-07-01-00.x.gz"
    cloud.put(key)
    conn.execute(
        """INSERT INTO log_files (bucket, key, status, queued_at)
           VALUES (%s, %s, 'queued', now() - interval '2 days')""",
        (BUCKET, key),
    )
    conn.commit()
    backlog = backfill.message_body(BUCKET, "w/other.gz")
    aws.client("sqs").send_message(QueueUrl=cloud.queue_url, MessageBody=backlog)
    request = Request([f"s3://{BUCKET}/w/"])
    waiting = backfill.backfill(conn, request, queue_url=cloud.queue_url)
    assert waiting.counts["skipped_in_flight"] == 1 and waiting.counts["enqueued"] == 0
    assert cloud.drain() == [(BUCKET, "w/other.gz")]
    idle = backfill.backfill(conn, request, queue_url=cloud.queue_url)
    assert idle.counts["stale"] == 1 and cloud.drain() == [(BUCKET, key)]
