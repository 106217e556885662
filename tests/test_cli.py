import json
from pathlib import Path

import boto3
import psycopg
from moto import mock_aws

from cflogs import aws, cli
from tests.logfiles import log_bytes, record


def write_logs(folder, count=3):
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        records = [record(ts=f"2025-02-16 1{n}:00:0{i}", path=f"/p{i}") for i in range(4)]
        (folder / f"E2EXAMPLE.2025-02-16-1{n}.{n:08x}.gz").write_bytes(log_bytes(records))
    (folder / "notes.txt").write_text("not a log, and not picked up from a directory")


def test_ingest_a_directory_with_json_summary(env, conn, tmp_path, capsys):
    write_logs(tmp_path / "logs")
    assert cli.main(["ingest", str(tmp_path / "logs"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["totals"]["objects"] == 3
    assert summary["totals"]["page_views"] == 12
    assert conn.execute("SELECT count(*) FROM page_views").fetchone() == (12,)


def test_ingest_globs_and_fails_loudly_on_a_bad_object(env, conn, tmp_path, capsys):
    write_logs(tmp_path / "logs", count=2)
    (tmp_path / "logs" / "broken.gz").write_bytes(b"\x1f\x8b\x08 truncated")
    assert cli.main(["ingest", str(tmp_path / "logs" / "*.gz")]) == 1
    out = capsys.readouterr().out
    assert "failed" in out and "broken.gz" in out
    statuses = conn.execute("SELECT status, count(*) FROM log_files GROUP BY 1 ORDER BY 1")
    assert statuses.fetchall() == [("done", 2), ("failed", 1)]


def test_missing_path_is_a_clear_error(env, tmp_path, capsys):
    assert cli.main(["ingest", str(tmp_path / "nope.gz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_migrate_reports_up_to_date(env, conn, capsys):
    assert cli.main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_invoke_names_the_functions_when_one_is_unknown(env, capsys):
    root = Path(__file__).resolve().parent.parent
    args = ["invoke", "NoSuchFunction", str(root / "events/s3-put.json")]
    assert cli.main([*args, "--template", str(root / "template.yaml")]) == 2
    assert "IngestFunction" in capsys.readouterr().err


def test_invoke_without_aws_credentials_says_so(env, monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws.reset_clients()
    root = Path(__file__).resolve().parent.parent
    args = ["invoke", "IngestFunction", str(root / "events/s3-put.json")]
    assert cli.main([*args, "--template", str(root / "template.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no AWS credentials" in err and "events/" in err
    assert err.count("\n") == 1 and "Traceback" not in err  # that line only
    with psycopg.connect(env.database_url) as conn:  # and nothing noted against the object
        assert conn.execute("SELECT count(*) FROM log_files").fetchone()[0] == 0
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    aws.reset_clients()
    assert cli.main(["ingest", "s3://some-bucket/logs/"]) == 2
    err = capsys.readouterr().err
    assert "no-such-profile" in err and "events/" not in err


def test_invoke_of_an_object_that_is_not_there(env, capsys):
    root = Path(__file__).resolve().parent.parent
    args = ["invoke", "IngestFunction", str(root / "events/s3-put.json")]
    with mock_aws():
        aws.reset_clients()
        assert cli.main([*args, "--template", str(root / "template.yaml")]) == 1
    assert "NoSuchBucket" in capsys.readouterr().err
    aws.reset_clients()


def test_backfill_loads_an_s3_prefix_and_status_reports_it(env, conn, capsys):
    with mock_aws():
        aws.reset_clients()
        s3 = boto3.client("s3", region_name="us-east-1")
        bucket = "cflogs-cli-test"  # moto answers 404 for a bucket named "logs"
        s3.create_bucket(Bucket=bucket)
        for hour in range(3):
            key = f"cf/E2EXAMPLE.2025-02-16-1{hour}.0000000{hour}.gz"
            s3.put_object(Bucket=bucket, Key=key, Body=log_bytes([record(path=f"/h{hour}")]))
        s3.put_object(Bucket=bucket, Key="cf/E2EXAMPLE.2025-02-16-13.bad00000.gz", Body=b"junk")
        args = [
            "backfill",
            f"s3://{bucket}/cf/",
            "--since",
            "2025-02-16T11",
            "--until",
            "2025-02-16",
        ]
        assert cli.main(args) == 1  # the junk object failed
        counts = json.loads(capsys.readouterr().out)
        assert counts["loaded"] == 2 and counts["load_failed"] == 1
        assert cli.main(["status"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["by_status"]["done"]["objects"] == 2
        assert [f["key"] for f in summary["failures"]] == ["cf/E2EXAMPLE.2025-02-16-13.bad00000.gz"]
    aws.reset_clients()
