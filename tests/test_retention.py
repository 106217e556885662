"""Retention on a real PostgreSQL: whole months go, with their rollups, sessions and
visitors, and after a stitch run sessions and visitors equal a batch run over the
page views that remain."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from cflogs import cli, ingest, retention, sessions
from tests.logfiles import IPHONE
from tests.test_sessions import assert_batch_equal, auto, load, pipeline, pv  # noqa: F401

TODAY = date(2025, 4, 10)  # keep_months=1 keeps March and April


def months(conn) -> list[str]:
    return sorted(ingest.known_months(conn))


def traffic_agrees(conn) -> bool:
    """traffic_hourly is the sum of the objects' shares in file_traffic."""
    keys = "hour, host, edge, status_class, kind"
    mismatched = conn.execute(
        f"""SELECT count(*) FROM (
              SELECT {keys}, requests, bytes, hits FROM traffic_hourly
              EXCEPT
              SELECT {keys}, sum(requests), sum(bytes), sum(hits) FROM file_traffic
              GROUP BY {keys}) AS d"""
    ).fetchone()[0]
    return mismatched == 0


def drop_partitions(conn) -> None:
    """Other tests leave partitions behind (their rows are truncated, not the months)."""
    for month in ingest.known_months(conn):
        conn.execute(f"DROP TABLE page_views_{month.replace('-', '_')}")


@pytest.fixture
def history(auto, pipeline):  # noqa: F811
    drop_partitions(auto)
    # Only in January; January into February across midnight; February and
    # March; one that starts in February, gap, then April; bots in January.
    load(auto, pipeline, "jan", [pv("2025-01-20 10:00:00", ip="192.0.2.1")])
    load(
        auto,
        pipeline,
        "jan-feb",
        [pv("2025-01-31 23:50:00", ip="192.0.2.2"), pv("2025-02-01 00:05:00", ip="192.0.2.2")],
    )
    load(
        auto,
        pipeline,
        "feb-mar",
        [
            pv("2025-02-28 23:45:00", "/a", ip="192.0.2.3", ua=IPHONE),
            pv("2025-03-01 00:10:00", "/b", ip="192.0.2.3", ua=IPHONE),
            pv("2025-03-01 00:30:00", "/c", ip="192.0.2.3", ua=IPHONE),
            pv("2025-02-10 09:00:00", ip="192.0.2.4"),
        ],
    )
    load(
        auto,
        pipeline,
        "apr",
        [pv("2025-04-02 12:00:00", ip="192.0.2.4"), pv("2025-04-02 12:10:00", ip="192.0.2.5")],
    )
    sessions.stitch(auto)
    assert_batch_equal(auto)
    assert months(auto) == ["2025-01", "2025-02", "2025-03", "2025-04"]
    return auto


def test_cutoff_is_a_month_start():
    assert retention.cutoff(1, date(2025, 4, 10)) == date(2025, 3, 1)
    assert retention.cutoff(3, date(2025, 1, 31)) == date(2024, 10, 1)
    assert retention.cutoff(12, date(2025, 12, 1)) == date(2024, 12, 1)
    with pytest.raises(ValueError):
        retention.cutoff(0)


def test_old_months_go_and_stitching_matches_a_batch_run(history):
    conn = history
    result = retention.apply(conn, 1, today=TODAY)

    assert result.partitions == ["page_views_2025_01", "page_views_2025_02"]
    assert months(conn) == ["2025-03", "2025-04"]
    first = conn.execute("SELECT min(ts) FROM page_views").fetchone()[0]
    assert first == datetime(2025, 3, 1, 0, 10, tzinfo=UTC)
    # 192.0.2.1 and .2 had only old sessions: gone, visitors and all; .4 keeps April.
    assert (result.sessions_deleted, result.visitors_deleted) == (3, 2)
    assert result.visitors_queued == 1  # .3's session began in February, ended in March
    hours = conn.execute("SELECT min(hour) FROM traffic_hourly").fetchone()[0]
    assert hours >= datetime(2025, 3, 1, tzinfo=UTC)
    old_shares = "SELECT count(*) FROM file_traffic WHERE hour < '2025-03-01'"
    assert conn.execute(old_shares).fetchone() == (0,)
    assert traffic_agrees(conn)
    # Nothing but the straddling visitor differs from a batch run before stitching.
    old_sessions = "SELECT count(*) FROM sessions WHERE ended_at < '2025-03-01'"
    assert conn.execute(old_sessions).fetchone() == (0,)
    (visitor,) = conn.execute("SELECT DISTINCT visitor_id FROM dirty_visitors").fetchone()

    sessions.stitch(conn)
    batch = assert_batch_equal(conn)
    straddler = [s for s in batch if s[0] == visitor]
    assert [(s[4], s[6], s[7]) for s in straddler] == [(2, "/b", "/c")]
    # The ledger keeps the dropped objects, so the backfill does not load them again.
    assert conn.execute("SELECT count(*) FROM log_files WHERE status = 'done'").fetchone()[0] == 4


def test_nothing_to_drop_changes_nothing(history):
    conn = history
    before = conn.execute("SELECT count(*) FROM page_views").fetchone()[0]
    result = retention.apply(conn, 6, today=TODAY)
    assert result.partitions == [] and result.cutoff == "2024-10-01"
    assert conn.execute("SELECT count(*) FROM page_views").fetchone()[0] == before
    assert_batch_equal(conn)


def test_a_reload_after_retention_comes_back_consistently(history, pipeline):  # noqa: F811
    conn = history
    retention.apply(conn, 1, today=TODAY)
    load(conn, pipeline, "jan", [pv("2025-01-20 10:00:00", ip="192.0.2.1")])
    sessions.stitch(conn)
    assert_batch_equal(conn)
    assert traffic_agrees(conn)
    assert retention.apply(conn, 1, today=TODAY).partitions == ["page_views_2025_01"]
    sessions.stitch(conn)
    assert_batch_equal(conn)


def test_busy_page_views_are_left_for_the_next_run(history, env, monkeypatch):
    import psycopg

    monkeypatch.setattr(retention, "LOCK_TIMEOUT", "100ms")
    with psycopg.connect(env.database_url) as other:
        other.execute("SELECT count(*) FROM page_views")  # holds a lock until rollback
        result = retention.apply(history, 1, today=TODAY)
        other.rollback()
    assert result.busy and result.partitions == []
    assert months(history) == ["2025-01", "2025-02", "2025-03", "2025-04"]


def test_cli_retention(history, env, capsys):
    assert cli.main(["retention", "--keep-months", "0"]) == 2
    assert cli.main(["retention", "--keep-months", "120"]) == 0
    assert '"partitions": []' in capsys.readouterr().out
