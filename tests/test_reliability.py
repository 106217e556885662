"""Faults and safety around a load: redacted samples, timeouts and TLS on every
connection, reconnecting after a dropped one, keys that cannot be guessed, and
one clear line for every error a user can cause."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cflogs import db, ingest, parser, values, visitor
from cflogs.config import Settings
from tests.logfiles import log_bytes, record

# ------------------------------------------------------------------ redaction


@pytest.mark.parametrize(
    "address",
    [
        "192.0.2.1",
        "2001:db8::1",
        "2001:db8:85a3:0:0:8a2e:370:7334",
        "::1",
        "2001:db8::",
        "fe80::",
        "::ffff:192.0.2.1",
        "2001:db8:85a3",  # partial, as a cut value leaves it
        "2001%3Adb8%3A%3A1",
        "2001%253Adb8%253A%253A1",
    ],
)
def test_every_address_form_is_masked_in_samples(address):
    line = f"2025-02-16\t10:00:01\tFRA56-P1\t{address}\tGET\t/x?ip={address}"
    masked = parser.redact(line)
    assert "<ip>" in masked
    assert address not in masked and "db8" not in masked and "192.0.2" not in masked
    assert masked.startswith("2025-02-16\t10:00:01\tFRA56-P1\t")  # the time stays


def test_a_sample_is_redacted_before_it_is_cut():
    stats = parser.Stats()
    line = "x" * (parser.SAMPLE_LENGTH - 6) + "\t198.51.100.123\t" + "y" * 100
    stats.reject("too long", line)
    (sample,) = stats.samples["too long"]
    assert len(sample) <= parser.SAMPLE_LENGTH and "198.51" not in sample


# ------------------------------------------------------------------ values


def test_clean_text_replaces_every_non_printable_character_and_cuts():
    assert values.clean_text("a\x00b\tc\u2028d\u202ee\x85") == "a\ufffdb\ufffdc\ufffdd\ufffde\ufffd"
    assert values.clean_text("é" * 10, 4) == "éééé"
    assert values.clean_text("plain") == "plain"


def test_seconds_keeps_plausible_durations_only():
    assert values.seconds("0.012") == 0.012
    assert [values.seconds(v) for v in ("-", "1e39", "nan", "inf", "-1", "86401")] == [None] * 6


def test_problems_finds_what_a_column_refuses():
    columns = ("request_id", "status", "bytes", "time_taken")
    assert values.problems(columns, ("ok", 200, 10, 0.1)) == []
    found = values.problems(columns, ("a\x00", 70000, 2**62, float("inf")))
    assert [f.split(":")[0] for f in found] == list(columns)


def test_window_follows_the_key_and_now():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert values.window(None, None, now) == ("2008-01-01", "2026-01-11")
    hour = datetime(2025, 2, 16, 10, tzinfo=UTC)
    assert values.window(hour, hour, now) == ("2025-02-15", "2025-02-17")
    assert ingest.object_window("logs/E2EXAMPLE.2025-02-16-10.abc.gz")[0] == "2025-02-15"


# ------------------------------------------------------------------ connections


def test_connections_bound_statements_and_lock_waits(env):
    with db.connect(env) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "10min"
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "1min"
        assert conn.pgconn.info  # the keepalive options were accepted by libpq
    with db.connect(env, options="-c lock_timeout=5s") as conn:  # a caller's options win
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "5s"


def test_rds_connections_verify_the_server_against_the_bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "RDS_CA_BUNDLE", tmp_path / "missing.pem")
    with pytest.raises(db.ConfigError, match="DB_SSLROOTCERT"):
        db.tls(Settings())
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert db.tls(Settings(db_sslrootcert=str(bundle))) == {
        "sslmode": "verify-full",
        "sslrootcert": str(bundle),
    }
    monkeypatch.setattr(db, "RDS_CA_BUNDLE", bundle)
    assert db.tls(Settings())["sslmode"] == "verify-full"
    assert db.tls(Settings(db_sslmode="require")) == {"sslmode": "require"}


def test_a_secret_connection_string_asks_for_verify_full(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(db, "RDS_CA_BUNDLE", bundle)
    secret = {"host": "db.example", "username": "u", "password": "p", "port": 5432}
    monkeypatch.setattr(db, "_db_secret", lambda arn, refresh: secret)
    info = db.conninfo(Settings(db_secret_arn="arn:aws:secretsmanager:x"))
    assert "sslmode=verify-full" in info and f"sslrootcert={bundle}" in info


def test_a_run_goes_on_after_the_connection_drops(env, tmp_path, conn):
    paths = []
    for n in range(3):
        path = tmp_path / f"E2EXAMPLE.2025-02-16-10.n{n}.gz"
        path.write_bytes(log_bytes([record(path=f"/n{n}", ip=f"192.0.2.{n + 1}")]))
        paths.append(path)
    sources = [ingest.local_source(p) for p in paths]
    loading = db.connect(env)
    pid = loading.info.backend_pid
    opened = sources[1].open

    def drop_then_open():  # the server goes away while the second object loads
        with psycopg.connect(env.database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return opened()

    sources[1].open = drop_then_open
    pipeline = ingest.Pipeline(env)
    results = []
    for source in sources:
        loading, result = ingest.ingest_in_run(loading, source, pipeline)
        results.append(result)
    assert loading.info.backend_pid != pid  # the run went on with a new connection
    loading.close()
    assert [r.status for r in results] == ["done", "failed", "done"]
    ledger = conn.execute("SELECT key, status, reason FROM log_files ORDER BY key").fetchall()
    assert [row[1] for row in ledger] == ["done", "failed", "done"]
    assert ledger[1][2]  # the failure, noted on the new connection


def test_a_value_the_database_still_refuses_fails_its_row_not_the_object(
    env, tmp_path, conn, monkeypatch
):
    monkeypatch.setattr(parser, "clean_text", lambda value, limit=0: value)  # cleaning skipped
    parser._decode_cached.cache_clear()
    bad = record(path="/nul%00inside")
    path = tmp_path / "E2EXAMPLE.2025-02-16-10.nul.gz"
    path.write_bytes(log_bytes([record(path="/good"), bad]))
    result = ingest.ingest(conn, ingest.local_source(path), ingest.Pipeline(env))
    assert result.status == "done"
    assert result.rejected_by_reason == {"value not storable: path: non-printable characters": 1}
    assert conn.execute("SELECT path FROM page_views").fetchall() == [("/good",)]


# ------------------------------------------------------------------ keys


def test_a_guessable_visitor_id_key_is_refused():
    for weak in (b"aaaaaaaaaaaaaaaaaaaaaaaa", b"passwordpassword", b"1234567890123456"):
        with pytest.raises(ValueError, match="too easy to guess"):
            visitor.VisitorIds(weak)
    visitor.VisitorIds(b"correct horse battery staple")
    visitor.VisitorIds(b"0f4c2a9e7b1d3c5a8e6f0b2d4a6c8e0f")


def test_the_local_key_lives_in_the_per_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CFLOGS_DATA_DIR", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.delenv("VISITOR_ID_SECRET", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env()
    assert settings.data_dir == tmp_path / "share" / "cflogs"
    key = visitor.load_key(settings)
    assert (tmp_path / "share" / "cflogs" / visitor.KEY_FILE).read_bytes().strip() == key
    assert not (tmp_path / ".cflogs").exists()


# ------------------------------------------------------------------ errors


def cflogs(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "cflogs.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [["report"], ["status"], ["migrate"], ["stitch"]])
def test_an_unreachable_database_is_one_line_and_exit_1(command, tmp_path):
    done = cflogs(
        *command,
        DATABASE_URL="postgresql://nobody@127.0.0.1:9/none?connect_timeout=2",
        CFLOGS_DATA_DIR=str(tmp_path),
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert (
        done.stderr.startswith("cflogs: cannot use the database") and "DATABASE_URL" in done.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "/no/such/file.gz"], "no such file"),
        (["invoke", "NoSuchFunction", "events/s3-put.json"], "no function"),
        (["report", "--since", "yesterday"], "invalid"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args, message, tmp_path):
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "cflogs.cli", *args],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "CFLOGS_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and message in done.stderr
