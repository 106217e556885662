"""The real ingest handler, run in-process with the files in events/, against
moto S3 and the test database."""

import json
from pathlib import Path

from cflogs import events
from cflogs.invoke import invoke, read_event
from tests.logfiles import log_bytes, record

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def keys_of(event_file: str) -> list[str]:
    return [ref.key for ref in events.s3_objects(read_event(EVENTS / event_file))]


def put_logs(s3, keys, records_per_key=3):
    for n, key in enumerate(keys):
        records = [
            record(ts=f"2025-02-16 10:{n:02d}:{i:02d}", path=f"/page{i}", ip=f"192.0.2.{n + 1}")
            for i in range(records_per_key)
        ]
        s3.put_object(Bucket="cflogs-example-logs", Key=key, Body=log_bytes(records))


def run(event_file: str | dict):
    event = read_event(EVENTS / event_file) if isinstance(event_file, str) else event_file
    return invoke("IngestFunction", event, ROOT / "template.yaml")


def ledger(conn):
    return conn.execute("SELECT key, status, page_views FROM log_files ORDER BY key").fetchall()


def test_s3_put_event_loads_the_object(s3, conn):
    put_logs(s3, keys_of("s3-put.json"))
    result = run("s3-put.json")
    assert [o["status"] for o in result["objects"]] == ["done"]
    assert ledger(conn) == [(keys_of("s3-put.json")[0], "done", 3)]
    etag = conn.execute("SELECT etag FROM log_files").fetchone()[0]
    assert etag == s3.head_object(Bucket="cflogs-example-logs", Key=keys_of("s3-put.json")[0])[
        "ETag"
    ].strip('"')


def test_replaying_the_event_changes_nothing(s3, conn):
    put_logs(s3, keys_of("s3-put.json"))
    run("s3-put.json")
    before = conn.execute("SELECT * FROM page_views ORDER BY request_id").fetchall()
    run("s3-put.json")
    assert conn.execute("SELECT * FROM page_views ORDER BY request_id").fetchall() == before


def test_two_records_in_one_event_each_load(s3, conn):
    event = read_event(EVENTS / "s3-put.json")
    second = json.loads(json.dumps(event["Records"][0]))
    second["s3"]["object"]["key"] = "cloudfront/E2EXAMPLE.2025-02-16-10.ffff0000.gz"
    event["Records"].append(second)
    put_logs(s3, [r.key for r in events.s3_objects(event)])
    result = run(event)
    assert len(result["objects"]) == 2
    assert [row[1] for row in ledger(conn)] == ["done", "done"]


def test_a_deleted_object_is_recorded_as_gone_not_retried(s3, conn):
    result = run("s3-put.json")  # does not raise: no retry can bring it back
    assert result["objects"][0]["status"] == "gone"
    status, reason, final = conn.execute("SELECT status, reason, final FROM log_files").fetchone()
    assert status == "gone" and final and "deleted before it was read" in reason


def test_sqs_batch_loads_encoded_keys_and_on_failure_envelopes(s3, conn):
    keys = keys_of("sqs-s3.json")
    assert "DistributionId=E2EXAMPLE/year=2025" in keys[0]  # decoded from %3D
    put_logs(s3, keys)
    assert run("sqs-s3.json") == {"batchItemFailures": []}
    assert [row[1:] for row in ledger(conn)] == [("done", 3), ("done", 3)]


def test_sqs_batch_reports_only_the_bad_record(s3, conn):
    keys = keys_of("sqs-s3.json")
    put_logs(s3, keys[:1])  # the second object does not exist
    event = read_event(EVENTS / "sqs-s3.json")
    event["Records"].append({**event["Records"][0], "messageId": "junk", "body": "not json"})
    result = run(event)
    failed = sorted(item["itemIdentifier"] for item in result["batchItemFailures"])
    assert failed == ["junk"]  # the object that is not there is gone: no retry brings it back
    assert sorted(row[1:] for row in ledger(conn)) == [("done", 3), ("gone", None)]


def test_a_non_log_object_is_failed_in_the_ledger_not_retried_forever(s3, conn):
    key = keys_of("s3-put.json")[0]
    s3.put_object(Bucket="cflogs-example-logs", Key=key, Body=b"")
    result = run("s3-put.json")  # does not raise
    assert result["objects"][0]["status"] == "failed"
    assert conn.execute("SELECT status, reason FROM log_files").fetchone() == (
        "failed",
        "empty object",
    )


def test_s3_test_event_is_ignored(s3, conn):
    assert run({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}) == {"objects": []}


def test_the_shared_connection_is_replaced_after_the_server_drops_it(s3, conn):
    from cflogs import db

    put_logs(s3, keys_of("s3-put.json"))
    run("s3-put.json")
    first = db.shared_connection()
    conn.execute("SELECT pg_terminate_backend(%s)", (first.info.backend_pid,))
    conn.commit()
    result = run("s3-put.json")  # a new connection, not an error
    assert [o["status"] for o in result["objects"]] == ["done"]
    assert db.shared_connection() is not first
