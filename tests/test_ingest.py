import io
import itertools
import threading

import psycopg
import pytest

from cflogs import db, enrich, ingest
from tests.conftest import clean_tables
from tests.logfiles import GOOGLEBOT, IPHONE, log_bytes, record


def source(key: str, data: bytes, etag: str | None = None) -> ingest.Source:
    return ingest.Source(
        "logs", key, etag or f"etag-{hash(data)}", len(data), lambda: io.BytesIO(data)
    )


@pytest.fixture
def pipeline(env):
    return ingest.Pipeline(env)


def state(conn: psycopg.Connection) -> dict:
    """Every table's contents, with surrogate file ids replaced by object keys."""
    return {
        "log_files": conn.execute(
            """SELECT bucket, key, etag, size, status, reason, lines, page_views,
                      bot_page_views, assets, rejected, first_ts, last_ts
               FROM log_files ORDER BY bucket, key"""
        ).fetchall(),
        "page_views": conn.execute(
            """SELECT f.key, p.* FROM page_views p JOIN log_files f USING (file_id)
               ORDER BY p.request_id"""
        ).fetchall(),
        "traffic_hourly": conn.execute(
            "SELECT * FROM traffic_hourly ORDER BY hour, host, edge, status_class, kind"
        ).fetchall(),
        "file_traffic": conn.execute(
            """SELECT f.key, t.hour, t.host, t.edge, t.status_class, t.kind, t.requests, t.bytes
               FROM file_traffic t JOIN log_files f USING (file_id) ORDER BY 1, 2, 3, 4, 5, 6"""
        ).fetchall(),
        "dirty_visitors": conn.execute(
            """SELECT DISTINCT visitor_id, first_ts, last_ts FROM dirty_visitors
               ORDER BY 1, 2, 3"""
        ).fetchall(),
    }


def strip_file_ids(page_view_rows):
    return [row[:1] + row[2:] for row in page_view_rows]


FILES = {
    "a.gz": [
        record(ts="2025-02-16 10:00:01", path="/", ip="192.0.2.1"),
        record(ts="2025-02-16 10:00:02", path="/app.css", ip="192.0.2.1", content_type="text/css"),
        record(ts="2025-02-16 10:05:00", path="/pricing", ip="192.0.2.1", query="utm_source=x"),
        record(ts="2025-02-16 10:06:00", path="/", ip="198.51.100.2", ua=GOOGLEBOT),
    ],
    "b.gz": [
        record(ts="2025-02-16 11:59:59", path="/docs/intro", ip="2001:db8::5", ua=IPHONE),
        record(ts="2025-02-16 11:00:00", path="/missing", ip="192.0.2.1", status=404),
        record(ts="2025-03-01 00:00:00", path="/", ip="192.0.2.1"),  # another month
    ],
    "c.gz": [record(ts="2025-02-16 10:30:00", path=f"/p{i}", ip="192.0.2.1") for i in range(5)],
}
DATA = {key: log_bytes(records) for key, records in FILES.items()}


def test_load_counts_rows_rollups_and_ledger(conn, pipeline):
    result = ingest.ingest(conn, source("a.gz", DATA["a.gz"], "v1"), pipeline)
    assert (result.status, result.lines, result.page_views, result.bot_page_views) == (
        "done",
        4,
        3,
        1,
    )
    assert (result.assets, result.rejected) == (1, 0)
    assert result.first_ts == "2025-02-16 10:00:01+00"
    ledger = conn.execute(
        "SELECT status, etag, lines, page_views, bot_page_views, assets, rejected FROM log_files"
    ).fetchone()
    assert ledger == ("done", "v1", 4, 3, 1, 1, 0)
    rows = conn.execute(
        "SELECT path, query, is_bot, host, status FROM page_views ORDER BY ts"
    ).fetchall()
    assert rows == [
        ("/", None, False, "www.example.com", 200),
        ("/pricing", "utm_source=x", False, "www.example.com", 200),
        ("/", None, True, "www.example.com", 200),
    ]
    traffic = conn.execute(
        "SELECT kind, status_class, requests, bytes FROM traffic_hourly ORDER BY kind"
    ).fetchall()
    assert traffic == [("asset", "2xx", 1, 1234), ("page", "2xx", 3, 3 * 1234)]
    # one dirty entry per human visitor, none for the bot
    dirty = conn.execute("SELECT count(DISTINCT visitor_id) FROM dirty_visitors").fetchone()
    assert dirty == (1,)


def test_replay_leaves_the_database_as_after_the_first_time(conn, pipeline):
    for key, data in DATA.items():
        ingest.ingest(conn, source(key, data), pipeline)
    first = state(conn)
    for key, data in reversed(DATA.items()):
        ingest.ingest(conn, source(key, data), pipeline)
    assert state(conn) == first


@pytest.mark.parametrize("order", list(itertools.permutations(DATA))[::2])
def test_any_order_and_twice_gives_identical_tables(conn, pipeline, order):
    for key in DATA:
        ingest.ingest(conn, source(key, DATA[key]), pipeline)
    expected = state(conn)
    clean_tables(conn)
    for key in (*order, *order[::-1]):
        ingest.ingest(conn, source(key, DATA[key]), pipeline)
    got = state(conn)
    # file ids are surrogates that depend on order; everything else must match
    assert strip_file_ids(got["page_views"]) == strip_file_ids(expected["page_views"])
    del got["page_views"], expected["page_views"]
    assert got == expected


def test_a_changed_object_replaces_its_rows_and_rollups(conn, pipeline):
    ingest.ingest(conn, source("a.gz", DATA["a.gz"], "v1"), pipeline)
    smaller = log_bytes(FILES["a.gz"][:1])
    ingest.ingest(conn, source("a.gz", smaller, "v2"), pipeline)
    assert conn.execute("SELECT count(*) FROM page_views").fetchone() == (1,)
    assert conn.execute("SELECT etag, page_views FROM log_files").fetchone() == ("v2", 1)
    assert conn.execute("SELECT kind, requests FROM traffic_hourly").fetchall() == [("page", 1)]


def test_two_loads_of_one_object_at_once(env, conn, pipeline):
    data = DATA["c.gz"]
    errors = []

    def load():
        try:
            with db.connect(env) as own:
                ingest.ingest(own, source("c.gz", data), ingest.Pipeline(env))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    concurrent = state(conn)
    ingest.ingest(conn, source("c.gz", data), pipeline)
    assert state(conn) == concurrent
    assert conn.execute("SELECT count(*) FROM page_views").fetchone() == (5,)


def test_not_a_log_object_is_failed_with_reason_and_nothing_loaded(conn, pipeline):
    result = ingest.ingest(conn, source("bad.gz", b"PK\x03\x04 a zip file"), pipeline)
    assert result.status == "failed" and "header" in result.reason
    assert conn.execute("SELECT status, reason, attempts FROM log_files").fetchone() == (
        "failed",
        result.reason,
        1,
    )
    assert conn.execute("SELECT count(*) FROM page_views").fetchone() == (0,)
    ingest.ingest(conn, source("bad.gz", b"PK\x03\x04 a zip file"), pipeline)
    assert conn.execute("SELECT attempts FROM log_files").fetchone() == (2,)


@pytest.mark.parametrize("gz", [False, True])
def test_a_read_error_mid_file_rolls_everything_back(conn, pipeline, gz):
    ingest.ingest(conn, source("c.gz", DATA["c.gz"]), pipeline)
    before = state(conn)

    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 40:
                raise ConnectionResetError("network went away")
            return super().read(min(size, 50) if size and size > 0 else 50)

    data = log_bytes(FILES["c.gz"] * 50, gz=gz)
    broken = ingest.Source("logs", "c.gz", "v9", len(data), lambda: Broken(data))
    with pytest.raises(ConnectionResetError):  # from gunzip's thread, when gz
        ingest.ingest(conn, broken, pipeline)
    assert state(conn) == before


def read_rows(pipeline, data: bytes) -> tuple[list[tuple], ingest.Tally]:
    rows: list[tuple] = []
    tally = ingest.read_records(io.BytesIO(data), 1, pipeline, ingest.parser.Stats(), rows.append)
    return rows, tally


def test_rollup_folds_statuses_into_classes_and_counts_hits(env):
    views = [record(status=200), record(status=206), record(status=200), record(status=404)]
    for view, result in zip(views, ("Hit", "Miss", "RefreshHit", "Error"), strict=True):
        view["x-edge-result-type"] = result
    views += [record(path="/app.js", content_type="text/javascript", size=10)]
    _, tally = read_rows(ingest.Pipeline(env), log_bytes(views))
    place = ("2025-02-16", "10", "www.example.com", "FRA56-P1")
    assert tally.traffic == {
        (*place, 2, "page"): [3, 3 * 1234, 2],
        (*place, 4, "other"): [1, 1234, 0],
        (*place, 2, "asset"): [1, 10, 1],
    }
    assert (tally.pages, tally.assets) == (3, 1)


def test_page_views_waiting_for_new_values_are_all_written(env, monkeypatch):
    """Page views with a new user agent or source wait to be resolved in batches,
    values too long to be cached included; the rows are those of one at a time."""
    long = "x" * ingest.parser.LONGEST_CACHED
    agents = [f"Agent{n}/1.0 (+https://agent{n}.example)" for n in range(300)]
    agents += [IPHONE, f"{IPHONE} {long}"]
    referrers = [f"https://site{n}.example/{n}" for n in range(250)] + [f"https://a.example/{long}"]
    views = [record(path=f"/p{i}", ua=agents[i % len(agents)], ip=f"192.0.2.{i % 200}",
                    referrer=referrers[i % len(referrers)], query=f"utm_source=s{i % 7}")
             for i in range(3000)]  # fmt: skip
    data = log_bytes(views)
    batched, batched_tally = read_rows(ingest.Pipeline(env), data)
    monkeypatch.setattr(ingest, "NEW_AGENTS_BATCH", 1)  # each new agent resolved at once
    monkeypatch.setattr(ingest, "WAITING_PAGE_VIEWS", 1)  # and each new source
    one_by_one, tally = read_rows(ingest.Pipeline(env), data)
    assert len(batched) == 3000
    assert sorted(batched, key=repr) == sorted(one_by_one, key=repr)
    assert batched_tally == tally
    assert tally.bots == 3000 - 2 * (3000 // len(agents))
    # each row has its own page view's columns, as the Enricher gives them directly
    direct = enrich.Enricher(env)
    logged = {view["x-edge-request-id"]: view for view in views}
    first = ingest.PAGE_VIEW_COLUMNS.index(enrich.COLUMNS[0])
    for row in batched:
        view = logged[row[ingest.PAGE_VIEW_COLUMNS.index("request_id")]]
        assert row[first:] == direct.columns(
            view["x-host-header"], view["cs-uri-query"], view["cs(Referer)"],
            view["cs(User-Agent)"], view["c-ip"],
        )  # fmt: skip
    assert len({row[ingest.PAGE_VIEW_COLUMNS.index("referrer_host")] for row in batched}) == 251
    # and caches that empty within a batch change nothing
    monkeypatch.setattr(enrich, "CACHE_ENTRIES", 37)
    assert sorted(read_rows(ingest.Pipeline(env), data)[0], key=repr) == sorted(batched, key=repr)


def test_page_views_wait_for_a_bounded_while(env, monkeypatch):
    monkeypatch.setattr(ingest, "WAITING_PAGE_VIEWS", 10)
    views = [record(path=f"/p{i}", ua=(IPHONE, GOOGLEBOT)[i % 2]) for i in range(3000)]
    stats = ingest.parser.Stats()

    def write_row(row):
        raise RuntimeError("first row")

    with pytest.raises(RuntimeError, match="first row"):
        ingest.read_records(io.BytesIO(log_bytes(views)), 1, ingest.Pipeline(env), stats, write_row)
    assert stats.lines <= 10  # the first row came after 10 page views, not at the end


def test_stopping_mid_file_stops_the_gunzip_thread(pipeline):
    data = log_bytes(FILES["c.gz"] * 20_000, gz=True)  # a few MB, more than gunzip reads ahead
    threads = threading.active_count()

    def write_row(row):
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away") as raised:
        ingest.read_records(io.BytesIO(data), 1, pipeline, ingest.parser.Stats(), write_row)
    # closed on the way out, not when the traceback (and the reader with it) is freed
    assert raised.tb is not None
    assert threading.active_count() == threads, threading.enumerate()


def test_rejected_lines_are_counted_in_the_ledger(conn, pipeline):
    data = log_bytes(FILES["a.gz"], gz=False)
    data += b"2025-02-16\t10:00:00\tcut short\n"
    result = ingest.ingest(conn, source("r.log", data), pipeline)
    assert (result.lines, result.rejected) == (5, 1)
    assert conn.execute("SELECT rejected FROM log_files").fetchone() == (1,)


def test_no_raw_ip_anywhere_in_the_database(conn, pipeline):
    for key, data in DATA.items():
        ingest.ingest(conn, source(key, data), pipeline)
    ips = ["192.0.2.1", "198.51.100.2", "2001:db8::5"]
    for name in ("log_files", "page_views", "traffic_hourly", "file_traffic", "dirty_visitors"):
        dump = str(conn.execute(f"SELECT * FROM {name}").fetchall())
        assert not any(ip in dump for ip in ips), name


def test_visitor_ids_are_keyed(env, conn):
    one = ingest.Pipeline(env).visitors.visitor_id("h", "192.0.2.1", "ua")
    assert one == ingest.Pipeline(env).visitors.visitor_id("h", "192.0.2.1", "ua")
    from cflogs.visitor import VisitorIds

    assert VisitorIds(b"another key of 32 bytes.........").visitor_id("h", "192.0.2.1", "ua") != one
