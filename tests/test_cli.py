import json
from pathlib import Path

from cflogs import cli
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
