"""`make demo`, shortened: generated logs -> in-process S3 -> the real ingest and
stitch handlers -> the report, checked against the generator's ground truth; and
the HTML report rendered in headless Chromium."""

import shutil
import subprocess
from pathlib import Path

import pytest

from cflogs import demo, generate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo_run(env, conn, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # a user's own database knows none of the generated addresses: the demo uses its own
    monkeypatch.setenv("GEOIP_DB_PATH", str(tmp_path / "GeoLite2-City.mmdb"))
    html = tmp_path / "report.html"
    checks = demo.run(
        root=ROOT, data_dir=tmp_path / "demo", days=1, visitors_per_hour=25, html_path=html
    )
    return checks, html, tmp_path / "demo"


def test_demo_report_matches_the_ground_truth(demo_run, conn):
    checks, html, data_dir = demo_run
    truth = generate.load_ground_truth(data_dir / "logs")
    assert truth.human_page_views > 100 and truth.sessions > 20
    assert checks == {
        "human page views": (truth.human_page_views, truth.human_page_views),
        "human visitors": (truth.human_visitors, truth.human_visitors),
        "sessions": (truth.sessions, truth.sessions),
        "page views without a country": (0, 0),
    }
    done = conn.execute("SELECT count(*) FROM log_files WHERE status = 'done'").fetchone()[0]
    assert done == truth.files
    assert conn.execute("SELECT count(*) FROM dirty_visitors").fetchone() == (0,)


def test_demo_twice_reuses_the_logs_and_gives_the_same_figures(demo_run, tmp_path):
    checks, html, data_dir = demo_run
    before = (data_dir / "logs" / generate.GROUND_TRUTH_FILE).stat().st_mtime_ns
    again = demo.run(root=ROOT, data_dir=data_dir, days=1, visitors_per_hour=25, html_path=html)
    assert again == checks
    assert (data_dir / "logs" / generate.GROUND_TRUTH_FILE).stat().st_mtime_ns == before


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium: .ci/run installs Debian's chromium package where it can")
    return found


def test_html_report_renders_in_headless_chromium(demo_run, tmp_path):
    _, html, _ = demo_run
    text = html.read_text()
    assert "<script src" not in text and "http" not in text.split("</style>")[0]  # all inline
    browser = chromium()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert dom.count('<svg class="chart"') == 1
    assert dom.count("<rect") >= 24  # a bar per hour of the one day
    for table in ("pages", "categories", "campaigns", "bots", "status_classes", "edges"):
        assert f'data-table="{table}"' in dom
    assert "<a href" not in dom  # one file: no links to a server
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1280,2000", html.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000


def test_demo_leaves_the_environment_as_it_found_it(demo_run):
    import os

    assert "AWS_ENDPOINT_URL" not in os.environ
    assert "POWERTOOLS_METRICS_DISABLED" not in os.environ
    assert "GEOIP_DB_S3_URI" not in os.environ and os.environ["GEOIP_DB_PATH"]
