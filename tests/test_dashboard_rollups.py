"""The dashboard's rollups stay equal to a rebuild from page_views and sessions
whatever order objects load, reload (changed) and replay in, with stitching
between: each object's share is replaced exactly."""

from __future__ import annotations

from datetime import date

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cflogs import sessions
from cflogs.dashboard import queries, rollups
from tests import test_sessions
from tests.conftest import clean_tables
from tests.test_sessions import load, page_views, pv

auto, pipeline = test_sessions.auto, test_sessions.pipeline  # the fixtures

ROLLUPS = {
    "daily_page_views": "SELECT dimension, day, host, value, label, page_views, bytes,"
    " round(time_taken::numeric, 3), timed FROM daily_page_views",
    "visitor_days": "SELECT * FROM visitor_days",
    "daily_sessions": "SELECT dimension, day, host, value, sessions, bounces,"
    " round(duration::numeric, 3), page_views FROM daily_sessions",
    # (rows at zero may stay in the monthly tables)
    "monthly_page_views": "SELECT dimension, day, host, value, page_views, bytes, timed"
    " FROM monthly_page_views WHERE page_views <> 0",
    "monthly_sessions": "SELECT dimension, day, host, value, sessions, bounces, page_views"
    " FROM monthly_sessions WHERE sessions <> 0",
    "daily_traffic": "SELECT * FROM daily_traffic",
    "daily_visitor_sketches": "SELECT * FROM daily_visitor_sketches",
    "monthly_visitor_sketches": "SELECT * FROM monthly_visitor_sketches",
}


def rollup_state(conn: psycopg.Connection) -> dict:
    return {name: sorted(conn.execute(query).fetchall()) for name, query in ROLLUPS.items()}


def assert_equals_rebuild(conn: psycopg.Connection) -> dict:
    kept = rollup_state(conn)
    rollups.rebuild(conn)
    assert rollup_state(conn) == kept
    return kept


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(views=page_views(), data=st.data())
def test_rollups_equal_a_rebuild_after_loads_reloads_and_stitches(auto, pipeline, views, data):
    clean_tables(auto)
    files = data.draw(st.integers(1, 3), label="files")
    owner = [data.draw(st.integers(0, files - 1)) for _ in views]
    full = {f: [v for v, o in zip(views, owner, strict=True) if o == f] for f in range(files)}
    reduced = {f: [v for v in full[f] if data.draw(st.booleans())] for f in range(files)}
    for f in data.draw(st.permutations(range(files)), label="order"):
        load(auto, pipeline, f"f{f}", full[f])
        if data.draw(st.booleans(), label="stitch"):
            sessions.stitch(auto, batch_size=2)
    for _ in range(data.draw(st.integers(0, 3), label="reloads")):
        f = data.draw(st.integers(0, files - 1))
        load(auto, pipeline, f"f{f}", data.draw(st.sampled_from([full[f], reduced[f]])))
    sessions.stitch(auto, batch_size=data.draw(st.integers(1, 3)))
    assert_equals_rebuild(auto)


def test_rollups_count_what_was_loaded_and_forget_an_emptied_object(auto, pipeline):
    views = [pv("2025-02-16 10:00:00", "/a"), pv("2025-02-16 10:10:00", "/b")]
    views.append(pv("2025-02-16 10:11:00", "/gone", status=404))
    load(auto, pipeline, "f", views)
    sessions.stitch(auto)
    state = assert_equals_rebuild(auto)
    pages = {row[3]: row[5] for row in state["daily_page_views"] if row[0] == "page"}
    assert pages == {"/a": 1, "/b": 1}
    assert [row[3] for row in state["daily_page_views"] if row[0] == "not_found"] == ["/gone"]
    assert [row[3] for row in state["visitor_days"]] == [2]  # one visitor, two page views
    total = [row for row in state["daily_sessions"] if row[0] == "total"]
    assert [(r[4], r[5], r[6], r[7]) for r in total] == [(1, 0, 600, 2)]

    load(auto, pipeline, "f", [pv("2025-02-16 10:00:00", "/a", ip="192.0.2.99")])
    sessions.stitch(auto)
    state = assert_equals_rebuild(auto)
    assert {row[3] for row in state["daily_page_views"] if row[0] == "page"} == {"/a"}
    assert len(state["visitor_days"]) == 1


def test_sketches_estimate_distinct_visitors_over_long_ranges(auto):
    clean_tables(auto)
    auto.execute(
        """INSERT INTO visitor_days
           SELECT DATE '2025-01-01' + g % 40, 'www.example.com', hashint8extended(g % 30000, 0), 1
           FROM generate_series(1, 90000) AS g ON CONFLICT DO NOTHING"""
    )
    auto.execute(
        "SELECT visitor_sketches_update(array_agg(day), array_agg(host))"
        " FROM (SELECT DISTINCT day, host FROM visitor_days) AS keys"
    )
    long = queries.cards(auto, queries.Query(date(2025, 1, 1), date(2025, 2, 9)))
    assert long["visitors estimated"] and abs(long["visitors"] - 30000) < 30000 * 0.05
    week = queries.cards(auto, queries.Query(date(2025, 1, 1), date(2025, 1, 7)))
    exact = auto.execute(
        "SELECT count(DISTINCT visitor_id) FROM visitor_days WHERE day < '2025-01-08'"
    ).fetchone()[0]
    assert not week["visitors estimated"] and week["visitors"] == exact
