"""The reading views and the reader role, on a real PostgreSQL; and the migrations
run by a user that is neither superuser nor allowed to create roles (as on RDS)."""

from __future__ import annotations

import re
import uuid
from datetime import date
from importlib import resources
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cflogs import db, sessions
from tests.logfiles import GOOGLEBOT
from tests.test_sessions import auto, load, pipeline, pv  # noqa: F401

DAY = date(2025, 2, 16)


@pytest.fixture
def site(auto, pipeline):  # noqa: F811
    """Two visitors from search (one bounces), one from a campaign, a bot."""
    load(
        auto,
        pipeline,
        "a",
        [
            pv("2025-02-16 10:00:00", "/", ip="192.0.2.1", referrer="https://www.google.com/"),
            pv("2025-02-16 10:05:00", "/pricing", ip="192.0.2.1"),
            pv("2025-02-16 11:00:00", "/", ip="192.0.2.2", referrer="https://www.google.com/"),
            pv(
                "2025-02-16 12:00:00",
                "/pricing",
                ip="192.0.2.3",
                query="utm_source=newsletter&utm_medium=email&utm_campaign=spring",
            ),
            pv("2025-02-16 12:00:00", "/", ip="192.0.2.9", ua=GOOGLEBOT),
            pv("2025-02-17 09:00:00", "/", ip="192.0.2.1"),
        ],
    )
    sessions.stitch(auto)
    return auto


def test_daily_visitors(site):
    rows = site.execute(
        "SELECT day, host, visitors, page_views, sessions, bounces FROM daily_visitors ORDER BY 1"
    ).fetchall()
    assert rows == [
        (DAY, "www.example.com", 3, 4, 3, 2),
        (date(2025, 2, 17), "www.example.com", 1, 1, 1, 1),
    ]


def test_daily_pages(site):
    rows = site.execute(
        "SELECT path, page_views, visitors FROM daily_pages WHERE day = %s ORDER BY 1", (DAY,)
    ).fetchall()
    assert rows == [("/", 2, 2), ("/pricing", 2, 2)]


def test_daily_sources_and_campaigns(site):
    sources = site.execute(
        "SELECT category, source, sessions, visitors, page_views, bounces FROM daily_sources"
        " WHERE day = %s ORDER BY 1",
        (DAY,),
    ).fetchall()
    assert sources == [("email", None, 1, 1, 1, 1), ("search", "Google", 2, 2, 3, 1)]
    campaigns = site.execute(
        "SELECT utm_source, utm_medium, utm_campaign, sessions, page_views FROM daily_campaigns"
    ).fetchall()
    assert campaigns == [("newsletter", "email", "spring", 1, 1)]


def test_reader_may_read_the_views_and_not_the_ledger(site):
    def may(table: str) -> bool:
        query = "SELECT has_table_privilege('cflogs_reader', %s, 'SELECT')"
        return site.execute(query, (table,)).fetchone()[0]

    assert all(may(v) for v in ("daily_visitors", "daily_sources", "sessions", "page_views"))
    assert not any(may(t) for t in ("log_files", "dirty_visitors", "file_traffic"))
    login = site.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'cflogs_reader'")
    assert login.fetchone() == (False,)


@pytest.fixture
def app_user(server_url):
    """A database owned by a plain login role (no superuser, no CREATEROLE), as an
    RDS application user; its connection string."""
    name = f"cflogs_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
    try:
        yield make_conninfo(server_url, dbname=name, user=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_migrations_run_without_createrole(app_user):
    with psycopg.connect(app_user) as conn:
        applied = db.migrate(conn)
        assert "0006_views.sql" in applied
        super_or_createrole = conn.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert super_or_createrole == (False,)
        # The role block once more with a role nobody made: skipped, not an error.
        missing = f"cflogs_reader_{uuid.uuid4().hex[:8]}"
        migration = (resources.files("cflogs") / "migrations" / "0006_views.sql").read_text()
        role_block = migration[migration.index("DO $$") :].replace("cflogs_reader", missing)
        conn.execute(
            role_block.replace("cflogs_grant_reader()", f"cflogs_grant_reader('{missing}')")
        )
        exists = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (missing,))
        assert exists.fetchone() == (0,)
        assert conn.execute("SELECT cflogs_grant_reader(%s)", (missing,)).fetchone() == (False,)


def test_the_documented_queries_run(site):
    """Every sql block of docs/queries.md, against the views and tables as they are."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "queries.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 6
    for block in blocks:
        site.execute(block).fetchall()
