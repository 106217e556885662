"""functions/backfill/app.py with the sample events, moto S3 + SQS, a real PostgreSQL."""

from __future__ import annotations

import importlib.util
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from cflogs import aws, backfill, ingest
from cflogs.s3 import s3_source
from tests.logfiles import log_bytes, record
from tests.test_backfill import ledger, objects_in

ROOT = Path(__file__).resolve().parent.parent
ARN = "arn:aws:lambda:us-east-1:111122223333:function:cflogs-BackfillFunction"


class Context:
    function_name = "cflogs-BackfillFunction"
    function_version = "$LATEST"
    invoked_function_arn = ARN
    memory_limit_in_mb = 512
    aws_request_id = "c0ffee00-0000-4000-8000-000000000002"
    log_group_name = "/aws/lambda/cflogs-BackfillFunction"
    log_stream_name = "stream"

    def __init__(self, remaining_seconds: float = 900):
        self.remaining_seconds = remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_seconds * 1000)


def sample(name: str) -> dict:
    return json.loads((ROOT / "events" / name).read_text())


@pytest.fixture
def lambda_env(env, monkeypatch):
    """moto S3 + SQS, the handler's environment, and the handler module loaded fresh."""
    with mock_aws():
        aws.reset_clients()
        queue_url = boto3.client("sqs").create_queue(QueueName="ingest")["QueueUrl"]
        monkeypatch.setenv("INGEST_QUEUE_URL", queue_url)
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", Context.function_name)
        spec = importlib.util.spec_from_file_location(
            "backfill_app", ROOT / "functions" / "backfill" / "app.py"
        )
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        yield app, queue_url
    aws.reset_clients()


class Invocations:
    """Asynchronous self-invocations the handler asks Lambda for (stubbed)."""

    def __init__(self):
        self.client = aws.client("lambda")
        self.events: list[dict] = []
        self.stubber = Stubber(self.client)
        self.client.meta.events.register("provide-client-params.lambda.Invoke", self._capture)

    def _capture(self, params, **_):
        assert params["FunctionName"] == ARN and params["InvocationType"] == "Event"
        self.events.append(json.loads(params["Payload"]))
        self.stubber.add_response("invoke", {"StatusCode": 202})


def drain(queue_url: str) -> list[tuple[str, str]]:
    sqs = aws.client("sqs")
    found = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for message in messages:
            found.extend(objects_in(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def ingest_queue_through_the_handler(queue_url: str) -> int:
    """Consume the queue as the event source mapping does: batches of up to 10
    messages as SQS events to the real IngestFunction; returns the messages."""
    from cflogs.invoke import invoke

    sqs = aws.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    handled = 0
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn["Attributes"]["QueueArn"],
                "awsRegion": "us-east-1",
            }
            for m in batch
        ]
        result = invoke("IngestFunction", {"Records": records}, ROOT / "template.yaml")
        assert result == {"batchItemFailures": []}
        for m in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        handled += len(batch)
    return handled


def test_scheduled_run_loads_objects_whose_events_were_lost(lambda_env, conn, monkeypatch, capsys):
    app, queue_url = lambda_env
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="cf-logs")
    now = datetime.now(UTC)
    recent = [
        f"cloudfront/E2EXAMPLE.{now - timedelta(hours=h):%Y-%m-%d-%H}.x{h}.gz" for h in (1, 30)
    ]
    recent.append(
        f"v2/E2EXAMPLE/{now - timedelta(hours=5):%Y/%m/%d/%H}/E2EXAMPLE.x.gz",
    )
    old = f"cloudfront/E2EXAMPLE.{now - timedelta(days=5):%Y-%m-%d-%H}.old.gz"
    for key in [*recent, old]:  # put with no event notification at all, logged that hour
        hour = backfill.key_date(key).first
        body = log_bytes([record(f"{hour:%Y-%m-%d %H}:10:00")])
        s3.put_object(Bucket="cf-logs", Key=key, Body=body)
    # Failures from long ago, of which only the one below the attempt limit and
    # under a configured prefix is retried.
    retried, hopeless, elsewhere = (
        "cloudfront/E2EXAMPLE.2019-05-01-00.retried.gz",
        "cloudfront/E2EXAMPLE.2019-05-01-00.hopeless.gz",
        "other/E2EXAMPLE.2019-05-01-00.elsewhere.gz",
    )
    for key in (retried, hopeless, elsewhere):
        s3.put_object(Bucket="cf-logs", Key=key, Body=log_bytes([record("2019-05-01 00:10:00")]))
    conn.execute(
        """INSERT INTO log_files (bucket, key, status, reason, attempts, processed_at)
           VALUES ('cf-logs', %s, 'failed', 'boom', 1, now()),
                  ('cf-logs', %s, 'failed', 'boom', 3, now()),
                  ('cf-logs', %s, 'failed', 'boom', 1, now())""",
        (retried, hopeless, elsewhere),
    )
    conn.commit()
    monkeypatch.setenv("LOG_PREFIXES", "s3://cf-logs/cloudfront/,s3://cf-logs/v2/")
    monkeypatch.setenv("BACKFILL_MIN_AGE_MINUTES", "0")

    result = app.handler(sample("backfill-schedule.json"), Context())

    assert result["complete"] and result["counts"]["enqueued"] == 4
    assert result["counts"]["failed"] == 1
    assert result["counts"]["out_of_range"] == 3
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    names = {
        m["Name"]
        for line in metrics
        for d in line["_aws"]["CloudWatchMetrics"]
        for m in d["Metrics"]
    }
    assert {"ObjectsListed", "ObjectsEnqueued"} <= names
    assert [(m["ObjectsListed"], m["ObjectsEnqueued"]) for m in metrics] == [([6.0], [4.0])]

    # The ingest side: the real ingest handler consumes the messages and loads them.
    assert ingest_queue_through_the_handler(queue_url) == 4
    statuses = {key: row[0] for key, row in ledger(conn).items()}
    assert statuses == {
        **dict.fromkeys([*recent, retried], "done"),
        hopeless: "failed",
        elsewhere: "failed",
    }


def test_scheduled_run_leaves_fresh_objects_to_their_event(lambda_env, conn, monkeypatch):
    app, queue_url = lambda_env
    boto3.client("s3").create_bucket(Bucket="cf-logs")
    key = f"cloudfront/E2EXAMPLE.{datetime.now(UTC):%Y-%m-%d-%H}.fresh.gz"
    boto3.client("s3").put_object(Bucket="cf-logs", Key=key, Body=b"x")
    monkeypatch.setenv("LOG_BUCKET", "cf-logs")
    monkeypatch.setenv("LOG_PREFIX", "cloudfront/")
    result = app.handler(sample("backfill-schedule.json"), Context())
    assert result["counts"]["too_new"] == 1 and drain(queue_url) == []


def put_example_objects() -> list[str]:
    """Objects around 2024 under the prefix the sample events name."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="cflogs-example-logs")
    keys = [
        f"cloudfront/E2EXAMPLE.{stamp}.0badf00d.gz"
        for stamp in (
            "2023-12-31-23",
            "2024-01-01-00",
            "2024-06-15-12",
            "2024-06-30-23",
            "2024-07-01-00",
            "2024-12-31-23",
            "2025-01-01-00",
        )
    ]
    for key in keys:
        s3.put_object(Bucket="cflogs-example-logs", Key=key, Body=b"x")
    return keys


def test_manual_range_event(lambda_env, conn):
    app, queue_url = lambda_env
    keys = put_example_objects()
    result = app.handler(sample("backfill-range.json"), Context())
    assert result["complete"] and result["hop"] == 0
    assert sorted(key for _, key in drain(queue_url)) == keys[1:6]


def test_continuation_event_resumes_after_its_cursor(lambda_env, conn):
    app, queue_url = lambda_env
    keys = put_example_objects()
    event = sample("backfill-continuation.json")
    result = app.handler(event, Context())
    assert result["complete"] and result["hop"] == 2
    assert sorted(key for _, key in drain(queue_url)) == keys[4:6]
    # The same event redriven from the function's on-failure destination.
    app.handler({"requestPayload": event, "requestContext": {}}, Context())
    assert drain(queue_url) == []  # already queued: nothing twice


def test_a_long_listing_continues_itself_until_every_key_is_queued(lambda_env, conn, monkeypatch):
    app, queue_url = lambda_env
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="big")
    keys = [
        f"logs/E1.2024-02-{d:02d}-{h:02d}.{n}.gz"
        for d in range(1, 8)
        for h in range(24)
        for n in (1, 2)
    ]
    for key in keys:
        s3.put_object(Bucket="big", Key=key, Body=b"x")
    monkeypatch.setenv("BACKFILL_PAGE_SIZE", "25")
    invocations = Invocations()
    event = {"prefixes": ["s3://big/logs/"], "since": "2024-02-02", "until": "2024-02-06"}
    hops = []
    with invocations.stubber:
        # Each run has no time to spare: one page, then a follow-up invocation.
        while True:
            result = app.handler(event, Context(remaining_seconds=app.RESERVE_SECONDS))
            hops.append(result["hop"])
            if result["complete"]:
                break
            event = invocations.events[-1]
    wanted = [k for k in keys if "2024-02-02" <= k[8:18] <= "2024-02-06"]
    sent = [key for _, key in drain(queue_url)]
    assert sorted(sent) == sorted(wanted) and len(sent) == len(wanted)
    assert hops == list(range(len(hops))) and len(hops) > 5
    assert len(invocations.events) == len(hops) - 1


@pytest.mark.slow  # about 4 minutes on 2 shared cores, 3/4 of it in ingest
def test_ten_thousand_objects_through_sqs(lambda_env, conn, monkeypatch):
    """The whole fan-out: 10,000 objects put with no event, a backfill that continues
    itself page by page, every message consumed and loaded, every object done.

    The consumer drains the queue after each hop, as Lambda's SQS poller does while
    the backfill runs: moto's SendMessage costs time proportional to the messages
    already queued, so one 10,000-message backlog would take many minutes here."""
    app, queue_url = lambda_env
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="many")
    bodies = {day: log_bytes([record(ts=f"2024-09-{day:02d} 12:00:00")]) for day in range(1, 6)}
    started = time.perf_counter()
    days = [1 + n // 2400 for n in range(10_000)]
    keys = [f"cf/E1.2024-09-{day:02d}-{n // 100 % 24:02d}.{n:05d}.gz" for n, day in enumerate(days)]
    for key, day in zip(keys, days, strict=True):
        s3.put_object(Bucket="many", Key=key, Body=bodies[day])
    put = time.perf_counter()

    monkeypatch.setenv("BACKFILL_PAGE_SIZE", "100")
    sqs = aws.client("sqs")
    pipeline = ingest.Pipeline()
    invocations = Invocations()
    event = {"prefixes": ["s3://many/cf/"], "since": "2024-09-01"}
    enqueued = loaded = hops = 0
    planning = 0.0
    with invocations.stubber:
        while event:
            began = time.perf_counter()
            result = app.handler(event, Context(remaining_seconds=app.RESERVE_SECONDS))
            planning += time.perf_counter() - began
            hops += 1
            enqueued += result["counts"]["enqueued"]
            event = None if result["complete"] else invocations.events[-1]
            while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages"
            ):
                for message in messages:
                    for bucket, key in objects_in(message["Body"]):
                        source = s3_source(bucket, key)
                        assert ingest.ingest(conn, source, pipeline).status == "done"
                        loaded += 1
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
    done = time.perf_counter()
    assert enqueued == loaded == 10_000 and hops == 100
    summary = backfill.status(conn)
    assert summary["by_status"] == {"done": {"objects": 10_000, "lines": 10_000}}
    assert summary["failures"] == []
    print(
        f"\n10,000 objects: put {put - started:.1f}s, plan+enqueue {planning:.1f}s "
        f"in {hops} hops, consume+ingest {done - put - planning:.1f}s"
    )
