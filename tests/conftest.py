"""Shared fixtures: a real PostgreSQL (DATABASE_URL's server, or an embedded one),
with a fresh database per test session and clean tables per test."""

from __future__ import annotations

import os

import boto3
import psycopg
import pytest
from moto import mock_aws

from cflogs import aws, db
from cflogs.config import Settings

# Powertools needs these, in tests as in Lambda.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "cflogs-test")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "cflogs")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture(scope="session")
def server_url():
    """The server to test against: DATABASE_URL when set, else an embedded one in a
    folder of its own (not pytest's tmp folders, which other runs rotate away)."""
    with db.throwaway_server() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(server_url):
    """A database of its own for this test session, migrated, dropped afterwards."""
    with db.scratch_database(server_url, "cflogs_test") as url:
        with psycopg.connect(url) as conn:
            db.migrate(conn)
        yield url
        db.close_shared_connection()


def clean_tables(conn: psycopg.Connection) -> None:
    tables = [
        row[0]
        for row in conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
               AND NOT c.relispartition AND c.relname <> 'schema_migrations'"""
        )
    ]
    conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
    conn.commit()


@pytest.fixture
def env(database_url, tmp_path, monkeypatch):
    """The environment a handler or CLI run sees: the test database, a visitor-id
    key, a data folder of its own, and fake AWS credentials for moto."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VISITOR_ID_SECRET", "test-visitor-id-key-0123456789abcdef")
    monkeypatch.setenv("CFLOGS_DATA_DIR", str(tmp_path / "data"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    aws.reset_clients()
    db.close_shared_connection()
    yield Settings.from_env()
    db.close_shared_connection()
    aws.reset_clients()


@pytest.fixture
def conn(env):
    with db.connect(env) as connection:
        clean_tables(connection)
        yield connection


def table(conn: psycopg.Connection, name: str, order_by: str) -> list[tuple]:
    """All rows of a table in a stable order, for comparing database states."""
    return conn.execute(f"SELECT * FROM {name} ORDER BY {order_by}").fetchall()


@pytest.fixture(autouse=True)
def fresh_metrics():
    """Powertools keeps metrics in class-level storage shared by every Metrics(); in
    Lambda each function has its own process, here one test's leftovers (a handler
    that raised, metrics disabled) would reach the next."""
    from aws_lambda_powertools import Metrics

    Metrics().clear_metrics()
    yield
    Metrics().clear_metrics()


@pytest.fixture
def s3(env):
    """moto S3 with the sample events' bucket."""
    with mock_aws():
        aws.reset_clients()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="cflogs-example-logs")
        yield client
    aws.reset_clients()
