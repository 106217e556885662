"""The real stitch handler, called in-process with events/schedule.json against the
test database."""

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from cflogs import db, ingest
from tests.test_sessions import assert_batch_equal, load, pv

ROOT = Path(__file__).resolve().parent.parent
EVENT = json.loads((ROOT / "events" / "schedule.json").read_text())


@dataclass
class FakeContext:
    remaining_ms: int = 300_000
    function_name: str = "cflogs-StitchFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:cflogs-StitchFunction"
    )
    aws_request_id: str = "3f1c9a2e-5b7d-4e1a-9c0b-2d4e6f8a0b1c"
    log_group_name: str = "/aws/lambda/cflogs-StitchFunction"
    log_stream_name: str = "2025/02/16/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def app(env):
    """functions/stitch/app.py, imported afresh so that it reads this test's settings."""
    spec = importlib.util.spec_from_file_location(
        "stitch_app", ROOT / "functions" / "stitch" / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def auto(env):
    with db.connect(env, autocommit=True) as connection:
        yield connection


def test_scheduled_event_stitches_the_queue(app, conn, auto, capsys):
    pipeline = ingest.Pipeline()
    load(auto, pipeline, "a", [pv("2025-02-16 10:00:00", ip=f"192.0.2.{n}") for n in range(3)])
    # A late page view that extends a session of the first file, and a new visitor.
    load(
        auto, pipeline, "b", [pv("2025-02-16 10:10:00", ip="192.0.2.0"), pv("2025-02-16 11:00:00")]
    )

    result = app.handler(EVENT, FakeContext())

    assert (result["visitors"], result["sessions_written"], result["backlog"]) == (4, 4, 0)
    assert [s[4] for s in assert_batch_equal(auto)].count(2) == 1
    (emitted,) = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line
    ]
    names = {metric["Name"] for metric in emitted["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"VisitorsStitched", "SessionsWritten", "Backlog", "BacklogAgeSeconds"}
    assert (emitted["VisitorsStitched"], emitted["Backlog"]) == ([4.0], [0.0])
    assert emitted["BacklogAgeSeconds"] == [0.0]


def test_no_time_left_leaves_the_backlog_for_the_next_run(app, conn, auto):
    load(
        auto,
        ingest.Pipeline(),
        "a",
        [pv("2025-02-16 10:00:00", ip=f"192.0.2.{n}") for n in range(2)],
    )

    result = app.handler(EVENT, FakeContext(remaining_ms=app.RESERVE_S * 1000))

    assert (result["batches"], result["visitors"], result["backlog"]) == (0, 0, 2)
    assert app.handler(EVENT, FakeContext())["backlog"] == 0


def test_retention_months_drop_old_months_before_stitching(app, conn, auto, monkeypatch):
    load(auto, ingest.Pipeline(), "a", [pv("2025-02-16 10:00:00"), pv("2025-02-16 10:05:00")])
    app.handler(EVENT, FakeContext())
    assert auto.execute("SELECT count(*) FROM sessions").fetchone() == (1,)

    monkeypatch.setenv("RETENTION_MONTHS", "1")  # February 2025 is long gone
    result = app.handler(EVENT, FakeContext())

    assert result["backlog"] == 0
    assert auto.execute("SELECT count(*) FROM page_views").fetchone() == (0,)
    assert auto.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    assert_batch_equal(auto)
