"""Session stitching against a plain batch sessionization written here, on a real
PostgreSQL: whatever the order of ingests, replays, reloads and (concurrent,
interrupted) stitch runs, the final sessions and visitors are the batch result."""

from __future__ import annotations

import io
import os
import threading
from datetime import timedelta
from itertools import groupby

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cflogs import db, ingest, sessions
from tests.conftest import clean_tables
from tests.logfiles import CHROME, GOOGLEBOT, IPHONE, log_bytes, record

TIMEOUT = timedelta(minutes=30)

# What a session takes from its first page view, in the sessions table's names.
ENTRY = (
    "host",
    "path",
    "referrer_host",
    "referrer_category",
    "referrer_source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "device_type",
    "browser",
    "os",
    "country_code",
)
SESSION_COLUMNS = (
    "visitor_id, started_at, ended_at, duration, page_views, host, landing_page, exit_page, "
    "referrer_host, referrer_category, referrer_source, utm_source, utm_medium, utm_campaign, "
    "device_type, browser, os, country_code, can_grow"
)


# ------------------------------------------------------------ batch reference


def batch_sessions(conn: psycopg.Connection, timeout: timedelta = TIMEOUT) -> list[tuple]:
    """Every stored human page view, sessionized in one pass, in Python."""
    views = conn.execute(
        f"SELECT visitor_id, ts, request_id, file_id, {', '.join(ENTRY)} FROM page_views"
        " WHERE NOT is_bot"
    ).fetchall()
    newest = conn.execute("SELECT max(ts) FROM page_views").fetchone()[0]
    # request_ids are ASCII, so Python's order is byte order.
    views.sort(key=lambda view: view[:4])
    result = []
    for visitor_id, visitor_views in groupby(views, key=lambda view: view[0]):
        run: list[tuple] = []
        for view in visitor_views:
            if run and view[1] - run[-1][1] >= timeout:
                result.append(_session(visitor_id, run, newest, timeout))
                run = []
            run.append(view)
        result.append(_session(visitor_id, run, newest, timeout))
    return sorted(result)


def _session(visitor_id, run, newest, timeout) -> tuple:
    first, last = run[0], run[-1]
    host, path, *how = first[4:]
    return (
        visitor_id,
        first[1],
        last[1],
        last[1] - first[1],
        len(run),
        host,
        path,
        last[5],
        *how,
        last[1] > newest - timeout,
    )


def batch_visitors(batch: list[tuple]) -> list[tuple]:
    result = []
    for visitor_id, rows in groupby(batch, key=lambda session: session[0]):
        rows = list(rows)
        result.append(
            (
                visitor_id,
                min(r[1] for r in rows),
                max(r[2] for r in rows),
                len(rows),
                sum(r[4] for r in rows),
            )
        )
    return result


def stored_sessions(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY visitor_id, started_at"
    ).fetchall()


def stored_visitors(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT visitor_id, first_seen, last_seen, sessions, page_views FROM visitors"
        " ORDER BY visitor_id"
    ).fetchall()


def assert_batch_equal(conn: psycopg.Connection, timeout: timedelta = TIMEOUT) -> list[tuple]:
    expected = batch_sessions(conn, timeout)
    assert stored_sessions(conn) == expected
    assert stored_visitors(conn) == batch_visitors(expected)
    ids = conn.execute("SELECT count(DISTINCT session_id), count(*) FROM sessions").fetchone()
    assert ids[0] == ids[1]
    assert conn.execute("SELECT count(*) FROM dirty_visitors").fetchone()[0] == 0
    return expected


# ------------------------------------------------------------ helpers


@pytest.fixture
def pipeline(env):
    return ingest.Pipeline(env)


# A stitcher waiting for another's lock is a bug here: fail instead of hanging.
NO_WAITING = "-c lock_timeout=5s"


@pytest.fixture
def auto(env):
    """An autocommit connection, so that each ingest and stitch batch commits."""
    with db.connect(env, autocommit=True, options=NO_WAITING) as connection:
        clean_tables(connection)
        yield connection


def load(conn, pipeline, key: str, records: list[dict]) -> ingest.FileResult:
    data = log_bytes(records)
    source = ingest.Source("test-logs", key, None, len(data), lambda: io.BytesIO(data))
    result = ingest.ingest(conn, source, pipeline)
    assert result.status == "done", result.reason
    return result


def pv(ts: str, path: str = "/", ip: str = "192.0.2.10", ua: str = CHROME, **kw) -> dict:
    return record(ts=ts, path=path, ip=ip, ua=ua, **kw)


def hold(other: psycopg.Connection, batch_size: int) -> sessions.BatchResult:
    """Stitch one batch on `other` and leave its transaction open, as a concurrent
    stitcher in the middle of its batch."""
    other.execute("SELECT 1")  # inside a transaction, stitch_batch only sets a savepoint
    return sessions.stitch_batch(other, batch_size=batch_size)


def session_ids(conn) -> list:
    return [row[0] for row in conn.execute("SELECT session_id FROM sessions ORDER BY started_at")]


# ------------------------------------------------------------ named cases


def test_late_page_view_bridges_two_sessions(auto, pipeline):
    load(auto, pipeline, "a", [pv("2025-02-16 10:00:00", "/first"), pv("2025-02-16 10:40:00")])
    sessions.stitch(auto)
    assert [r[4] for r in assert_batch_equal(auto)] == [1, 1]
    first_id = session_ids(auto)[0]

    load(auto, pipeline, "b", [pv("2025-02-16 10:20:00", "/bridge")])
    result = sessions.stitch(auto)
    (session,) = assert_batch_equal(auto)
    assert session[4] == 3 and session[3] == timedelta(minutes=40)
    assert session[6:8] == ("/first", "/")
    assert session_ids(auto) == [first_id]  # same first page view, same id
    assert (result.visitors, result.sessions_written, result.sessions_removed) == (1, 1, 2)


def test_gap_of_exactly_the_timeout_starts_a_new_session(auto, pipeline):
    load(
        auto,
        pipeline,
        "a",
        [
            pv("2025-02-16 10:00:00"),
            pv("2025-02-16 10:30:00"),  # exactly 30 minutes: new session
            pv("2025-02-16 10:59:59"),  # 29:59 later: same session
        ],
    )
    sessions.stitch(auto)
    assert [(r[4], r[3]) for r in assert_batch_equal(auto)] == [
        (1, timedelta(0)),
        (2, timedelta(minutes=29, seconds=59)),
    ]


def test_configured_timeout(auto, pipeline):
    load(auto, pipeline, "a", [pv("2025-02-16 10:00:00"), pv("2025-02-16 10:20:00")])
    sessions.stitch(auto, timeout_minutes=10)
    assert len(assert_batch_equal(auto, timedelta(minutes=10))) == 2


def test_visitor_spanning_midnight_and_month_end(auto, pipeline):
    load(auto, pipeline, "a", [pv("2025-02-28 23:50:00", "/night")])
    load(auto, pipeline, "b", [pv("2025-03-01 00:10:00", "/morning")])
    sessions.stitch(auto)
    (session,) = assert_batch_equal(auto)
    assert session[1].day == 28 and session[2].day == 1 and session[4] == 2


def test_bots_make_no_sessions_or_visitors(auto, pipeline):
    load(
        auto,
        pipeline,
        "a",
        [
            pv("2025-02-16 10:00:00", ua=GOOGLEBOT),
            pv("2025-02-16 10:01:00", ua=GOOGLEBOT, path="/other"),
            pv("2025-02-16 10:02:00", ip="192.0.2.20"),
        ],
    )
    load(auto, pipeline, "bots-only", [pv("2025-02-16 11:00:00", ua=GOOGLEBOT)])
    sessions.stitch(auto)
    (session,) = assert_batch_equal(auto)
    assert session[4] == 1
    assert auto.execute("SELECT count(*) FROM visitors").fetchone()[0] == 1


def test_replayed_file_changes_nothing(auto, pipeline):
    records = [pv(f"2025-02-16 10:{m:02d}:00", f"/p{m}", ip=f"192.0.2.{m % 3}") for m in range(9)]
    load(auto, pipeline, "a", records)
    sessions.stitch(auto)
    before = (
        auto.execute("SELECT * FROM sessions ORDER BY session_id").fetchall(),
        auto.execute("SELECT * FROM visitors ORDER BY visitor_id").fetchall(),
    )
    load(auto, pipeline, "a", records)
    assert auto.execute("SELECT count(*) FROM dirty_visitors").fetchone()[0] > 0
    sessions.stitch(auto)
    after = (
        auto.execute("SELECT * FROM sessions ORDER BY session_id").fetchall(),
        auto.execute("SELECT * FROM visitors ORDER BY visitor_id").fetchall(),
    )
    assert after == before
    assert_batch_equal(auto)


def test_reload_that_drops_page_views_splits_and_removes(auto, pipeline):
    kept = pv("2025-02-16 10:00:00", "/a")
    middle = pv("2025-02-16 10:20:00", "/b")
    end = pv("2025-02-16 10:40:00", "/c")
    gone = pv("2025-02-16 10:05:00", ip="192.0.2.99")
    load(auto, pipeline, "a", [kept, middle, end, gone])
    sessions.stitch(auto)
    assert len(assert_batch_equal(auto)) == 2

    load(auto, pipeline, "a", [kept, end])  # new rules drop two page views
    result = sessions.stitch(auto)
    assert [r[4] for r in assert_batch_equal(auto)] == [1, 1]
    assert result.visitors == 2
    assert auto.execute("SELECT count(*) FROM visitors").fetchone()[0] == 1


def test_can_grow_follows_the_newest_page_view(auto, pipeline):
    load(
        auto, pipeline, "a", [pv("2025-02-16 10:00:00"), pv("2025-02-16 10:10:00", ip="192.0.2.2")]
    )
    sessions.stitch(auto)
    assert [r[-1] for r in assert_batch_equal(auto)] == [True, True]

    # Another visitor's page view moves the newest past the first session only.
    load(auto, pipeline, "b", [pv("2025-02-16 10:35:00", ip="192.0.2.3", ua=GOOGLEBOT)])
    result = sessions.stitch(auto)
    assert result.visitors == 0 and result.sessions_closed == 1
    grow = {r[1].minute: r[-1] for r in assert_batch_equal(auto)}
    assert grow == {0: False, 10: True}

    # A reload that drops that page view moves the newest back: it reopens.
    load(auto, pipeline, "b", [])
    result = sessions.stitch(auto)
    assert result.sessions_closed == 1
    assert [r[-1] for r in assert_batch_equal(auto)] == [True, True]


def test_held_visitors_are_left_to_the_stitcher_holding_them(auto, env, pipeline):
    load(auto, pipeline, "a", [pv("2025-02-16 10:00:00", ip=f"192.0.2.{n}") for n in range(2)])
    with db.connect(env, options=NO_WAITING) as other:
        assert hold(other, batch_size=10).visitors == 2
        load(
            auto,
            pipeline,
            "b",
            [pv("2025-02-16 10:00:00", ip=f"192.0.2.{n}") for n in range(2, 6)]
            + [pv("2025-02-16 10:20:00", ip="192.0.2.0")],  # a held visitor's new page view
        )
        result = sessions.stitch(auto, batch_size=2)
        assert result.visitors == 4
        assert result.backlog == 2
        assert auto.execute("SELECT count(*) FROM sessions").fetchone()[0] == 4
        other.commit()
    result = sessions.stitch(auto)
    assert result.visitors == 1 and result.backlog == 0
    assert len(assert_batch_equal(auto)) == 6


def test_interrupted_stitch_loses_nothing(auto, pipeline):
    load(auto, pipeline, "a", [pv("2025-02-16 10:00:00", ip=f"192.0.2.{n}") for n in range(3)])
    with auto.transaction():
        sessions.stitch_batch(auto, batch_size=2)
        sessions.stitch_batch(auto, batch_size=2)
        raise psycopg.Rollback
    assert auto.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    assert sessions.backlog(auto) == 3
    sessions.stitch(auto)
    assert len(assert_batch_equal(auto)) == 3


def test_time_budget_stops_between_batches(auto, pipeline):
    load(auto, pipeline, "a", [pv("2025-02-16 10:00:00", ip=f"192.0.2.{n}") for n in range(3)])
    result = sessions.stitch(auto, time_budget_s=0)
    assert (result.batches, result.visitors, result.backlog) == (0, 0, 3)
    # One visitor a batch, in two sweeps (from the oldest entry's visitor up, then
    # the rest), each ended by a batch that finds nothing left in its range.
    result = sessions.stitch(auto, batch_size=1)
    assert (result.batches, result.visitors, result.backlog) == (5, 3, 0)


def test_stitching_starts_at_the_oldest_queued_visitor(auto, pipeline):
    load(auto, pipeline, "a", [pv("2025-02-16 10:00:00", ip="192.0.2.1")])
    load(auto, pipeline, "b", [pv("2025-02-16 10:00:00", ip=f"192.0.2.{n}") for n in range(2, 9)])
    oldest = auto.execute("SELECT visitor_id FROM dirty_visitors ORDER BY id LIMIT 1").fetchone()[0]
    sweeps = sessions._sweeps(auto)
    assert sweeps == [(oldest, sessions.LAST_VISITOR), (sessions.FIRST_VISITOR, oldest - 1)]
    sessions.stitch_batch(auto, batch_size=1, visitors=sweeps[0])
    assert [row[0] for row in stored_visitors(auto)] == [oldest]
    sessions.stitch(auto, batch_size=3)
    assert len(assert_batch_equal(auto)) == 8


def test_stitch_analyzes_tables_a_large_load_changed(auto, pipeline, monkeypatch):
    def analyzed() -> dict[str, int]:  # manual ANALYZE runs (autovacuum's are counted apart)
        rows = auto.execute("SELECT relname, analyze_count FROM pg_stat_user_tables").fetchall()
        return dict(rows)

    monkeypatch.setattr(sessions, "ANALYZE_AFTER_CHANGES", 3)
    load(auto, pipeline, "a", [pv("2025-02-16 10:00:00", ip=f"192.0.2.{n}") for n in range(4)])
    auto.execute("SELECT pg_stat_force_next_flush()")  # this backend's counts, now
    before = analyzed()
    sessions.stitch(auto)
    after = analyzed()
    for table in ("page_views_2025_02", "dirty_visitors"):
        assert after[table] > before.get(table, 0), table
    assert after["traffic_hourly"] == before["traffic_hourly"]  # not the stitcher's
    auto.execute("SELECT pg_stat_force_next_flush()")
    assert "public.page_views_2025_02" not in sessions.analyze_stale(auto)


def test_stitchers_running_alongside_ingest_agree_with_a_batch_run(auto, env, pipeline):
    """Two stitcher threads loop while files (some replayed, some reloaded smaller)
    are loaded: no errors, no lock waits to speak of, and the batch result."""
    files = {
        f"f{n}": [
            pv(f"2025-02-16 1{n % 3}:{m:02d}:{n:02d}", f"/p{m}", ip=f"192.0.2.{(n * m) % 7}")
            for m in range(0, 60, 7)
        ]
        for n in range(8)
    }
    stop = threading.Event()
    errors: list[BaseException] = []

    def stitcher():
        try:
            with db.connect(env, autocommit=True, options=NO_WAITING) as conn:
                while not stop.is_set():
                    sessions.stitch(conn, batch_size=3)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=stitcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for key, records in [*files.items(), ("f2", files["f2"]), ("f5", files["f5"][::2])]:
            load(auto, pipeline, key, records)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    sessions.stitch(auto)
    assert_batch_equal(auto)


def test_full_rebuild_gives_the_same_rows(auto, pipeline):
    load(
        auto,
        pipeline,
        "a",
        [
            pv(f"2025-02-16 1{h}:{m}0:00", ip=f"192.0.2.{h}")
            for h in range(3)
            for m in range(0, 6, 2)
        ],
    )
    load(auto, pipeline, "b", [pv("2025-02-16 10:30:00", ip="192.0.2.0")])
    sessions.stitch(auto, batch_size=1)
    assert_rebuild_equal(auto)


def assert_rebuild_equal(conn: psycopg.Connection) -> None:
    """Stitching every visitor from scratch gives the same rows, ids included."""
    incremental = conn.execute("SELECT * FROM sessions ORDER BY session_id").fetchall()
    visitors = conn.execute("SELECT * FROM visitors ORDER BY visitor_id").fetchall()
    with conn.transaction():
        conn.execute("DELETE FROM sessions")
        conn.execute("DELETE FROM visitors")
        conn.execute(
            "INSERT INTO dirty_visitors (visitor_id, first_ts, last_ts)"
            " SELECT visitor_id, min(ts), max(ts) FROM page_views WHERE NOT is_bot"
            " GROUP BY visitor_id"
        )
    sessions.stitch(conn)
    assert conn.execute("SELECT * FROM sessions ORDER BY session_id").fetchall() == incremental
    assert conn.execute("SELECT * FROM visitors ORDER BY visitor_id").fetchall() == visitors


# ------------------------------------------------------------ the invariant

VISITORS = [(ip, ua) for ip in ("192.0.2.1", "192.0.2.2") for ua in (CHROME, IPHONE)] + [
    ("192.0.2.3", GOOGLEBOT)
]


@st.composite
def page_views(draw) -> list[dict]:
    """A few visitors around midnight at the end of a month; times on a quarter-hour
    grid give gaps of exactly the timeout, equal timestamps and near misses."""
    views = []
    for _ in range(draw(st.integers(1, 14))):
        quarter = draw(st.integers(0, 9))
        second = draw(st.sampled_from([0, 0, 1, 59]))
        minutes = 23 * 60 + 15 * quarter
        day, minutes = (28, minutes) if minutes < 24 * 60 else (1, minutes - 24 * 60)
        month = 2 if day == 28 else 3
        ts = f"2025-{month:02d}-{day:02d} {minutes // 60:02d}:{minutes % 60:02d}:{second:02d}"
        ip, ua = draw(st.sampled_from(VISITORS))
        path = draw(st.sampled_from(["/", "/a", "/b"]))
        referrer = draw(st.sampled_from(["-", "https://www.google.com/"]))
        views.append(pv(ts, path, ip=ip, ua=ua, referrer=referrer))
    return views


OPERATIONS = st.sampled_from(
    ["replay", "reload", "stitch", "hold", "release", "interrupt", "stitch"]
)
# Database tests: no deadline; fixtures are function-scoped but every example
# cleans the tables itself. "stitch-ci" (the default) runs 300 examples in well
# under a minute here; STITCH_PROFILE=stitch-dev runs 50, stitch-long 2,000.
settings.register_profile(
    "stitch-ci",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("stitch-dev", settings.get_profile("stitch-ci"), max_examples=50)
settings.register_profile("stitch-long", settings.get_profile("stitch-ci"), max_examples=2000)


@settings(settings.get_profile(os.environ.get("STITCH_PROFILE", "stitch-ci")))
@given(views=page_views(), data=st.data())
def test_stitching_equals_a_batch_run(auto, env, pipeline, views, data):
    clean_tables(auto)
    files = data.draw(st.integers(1, 4), label="files")
    owner = [data.draw(st.integers(0, files - 1)) for _ in views]
    full = {f: [v for v, o in zip(views, owner, strict=True) if o == f] for f in range(files)}
    # Each file's changed version (reprocessing with new rules) drops some page views.
    reduced = {f: [v for v in full[f] if data.draw(st.booleans())] for f in range(files)}
    order = data.draw(st.permutations(range(files)), label="order")
    steps = [("load", f) for f in order]
    for operation in data.draw(st.lists(OPERATIONS, max_size=8), label="operations"):
        steps.insert(data.draw(st.integers(0, len(steps))), (operation, None))

    with db.connect(env, options=NO_WAITING) as other:
        holding = False
        for operation, f in steps:
            batch_size = data.draw(st.integers(1, 3))
            if operation == "load":
                load(auto, pipeline, f"f{f}", full[f])
            elif operation in ("replay", "reload"):
                f = data.draw(st.integers(0, files - 1))
                load(auto, pipeline, f"f{f}", full[f] if operation == "replay" else reduced[f])
            elif operation == "stitch":
                sessions.stitch(auto, batch_size=batch_size)
            elif operation == "hold" and not holding:
                hold(other, batch_size)
                holding = True
            elif operation == "release" and holding:
                other.commit() if data.draw(st.booleans()) else other.rollback()
                holding = False
            elif operation == "interrupt":
                with auto.transaction():
                    sessions.stitch_batch(auto, batch_size=batch_size)
                    raise psycopg.Rollback
        other.commit()
    sessions.stitch(auto, batch_size=data.draw(st.integers(1, 3)))
    assert_batch_equal(auto)
    assert_rebuild_equal(auto)  # session ids too: they depend on nothing but the page views


def test_backlog_age_is_the_oldest_entry(auto):
    assert sessions.backlog_and_age(auto) == (0, 0.0)
    auto.execute(
        "INSERT INTO dirty_visitors (visitor_id, first_ts, last_ts, queued_at) VALUES"
        " (1, now(), now(), now() - interval '1 hour'), (1, now(), now(), now()),"
        " (2, now(), now(), now() - interval '10 minutes')"
    )
    count, age = sessions.backlog_and_age(auto)
    assert count == 2 and 3600 <= age < 3660
