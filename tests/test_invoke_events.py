"""Every file in events/ through `cflogs invoke`: the Docker-free twin of
`sam local invoke`, reading the function from template.yaml, against moto and
the test database."""

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cflogs import aws, cli, events
from tests.logfiles import log_bytes, record

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_OF = {
    "s3-put.json": "IngestFunction",
    "sqs-s3.json": "IngestFunction",
    "kinesis-realtime.json": "RealtimeFunction",
    "schedule.json": "StitchFunction",
    "backfill-schedule.json": "BackfillFunction",
    "backfill-range.json": "BackfillFunction",
    "backfill-continuation.json": "BackfillFunction",
    "env.example.json": None,  # environment for `make sam-invoke`, not an event
}
BUCKET = "cflogs-example-logs"


def test_every_event_file_has_a_function():
    assert sorted(p.name for p in (ROOT / "events").glob("*.json")) == sorted(FUNCTION_OF)


@pytest.fixture
def aws_world(env, monkeypatch):
    with mock_aws():
        aws.reset_clients()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for name in ("s3-put.json", "sqs-s3.json"):
            event = json.loads((ROOT / "events" / name).read_text())
            for ref in events.s3_objects(event):
                s3.put_object(Bucket=ref.bucket, Key=ref.key, Body=log_bytes([record()]))
        for day in ("2024-03-01-10", "2024-09-30-23"):  # in the backfill events' range
            key = f"cloudfront/E2EXAMPLE.{day}.0000abcd.gz"
            s3.put_object(Bucket=BUCKET, Key=key, Body=log_bytes([record()]))
        queue = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="ingest")
        monkeypatch.setenv("INGEST_QUEUE_URL", queue["QueueUrl"])
        monkeypatch.setenv("LOG_BUCKET", BUCKET)
        monkeypatch.setenv("LOG_PREFIX", "cloudfront/")
        yield
    aws.reset_clients()


@pytest.mark.parametrize("name", sorted(name for name, fn in FUNCTION_OF.items() if fn))
def test_cflogs_invoke_runs_each_event(aws_world, conn, name, capsys):
    args = ["invoke", FUNCTION_OF[name], str(ROOT / "events" / name)]
    assert cli.main([*args, "--template", str(ROOT / "template.yaml")]) == 0
    result = json.loads(capsys.readouterr().out)
    if name == "s3-put.json":
        assert [o["status"] for o in result["objects"]] == ["done"]
    elif name == "sqs-s3.json":
        assert result == {"batchItemFailures": []}
    elif name == "kinesis-realtime.json":
        assert result == {"batchItemFailures": []}
        assert conn.execute("SELECT count(*) FROM page_views").fetchone()[0] == 2
    elif name == "schedule.json":
        assert result["backlog"] == 0
    elif name == "backfill-range.json":
        assert result["counts"]["enqueued"] == 2
    elif name == "backfill-continuation.json":  # starts after June: one object left
        assert result["counts"]["enqueued"] == 1
