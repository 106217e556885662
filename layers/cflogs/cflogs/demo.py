"""`make demo`: the whole pipeline on a laptop. A generated week of CloudFront logs
is put into an in-process S3 (moto's server mode), beside a GeoIP City database
for the generated addresses (GEOIP_DB_S3_URI); each put fires the real ingest
handler with a real S3 event, as the bucket notification would; the stitch handler
runs with its schedule event; the dashboard's figures are checked against the
generator's ground truth, and the demo ends saying how to open the dashboard."""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote_plus

from . import aws, db, generate, geodb, report
from .config import Settings
from .dashboard import render
from .invoke import Functions, read_event

BUCKET = "cflogs-demo-logs"
PREFIX = "cloudfront/"


def s3_put_event(bucket: str, key: str, etag: str, size: int) -> dict:
    """The notification S3 sends for a put (keys URL-encoded, as S3 does)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "eTag": etag, "size": size},
                },
            }
        ]
    }


@contextmanager
def _environment(**values: str):
    """Set environment variables for the demo and put everything back afterwards
    (the demo runs in tests too, beside other code reading the environment)."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.reset_clients()


@contextmanager
def _in_process_s3():
    """moto's S3 server on a free loopback port, with boto3 pointed at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with _environment(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",
    ):
        os.environ.pop("AWS_PROFILE", None)
        aws.reset_clients()
        try:
            yield aws.client("s3")
        finally:
            server.stop()


def _sample_logs(folder: Path, days: int, visitors_per_hour: float, seed: int):
    wanted = {"days": days, "visitors_per_hour": visitors_per_hour, "seed": seed}
    marker = folder / "demo-parameters.json"
    truth = generate.load_ground_truth(folder)
    if truth and marker.exists() and json.loads(marker.read_text()) == wanted:
        return truth, False
    truth = generate.generate(folder, days=days, visitors_per_hour=visitors_per_hour, seed=seed)
    marker.write_text(json.dumps(wanted))
    return truth, True


def run(
    root: Path = Path("."),
    data_dir: Path | None = None,
    days: int = 7,
    visitors_per_hour: float = 200,
    seed: int = 1,
    html_path: Path | None = Path("report.html"),
    console=None,
) -> dict:
    """Run the demo; returns the figures it checked: {name: (found, expected)}."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    root = root.resolve()
    data_dir = (data_dir or Settings.from_env().data_dir / "demo").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    defaults = {
        "POWERTOOLS_METRICS_NAMESPACE": "cflogs-demo",
        "POWERTOOLS_SERVICE_NAME": "cflogs",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    started = time.perf_counter()
    values = {name: os.environ.get(name, value) for name, value in defaults.items()}
    # The demo's database and key are its own, even when CFLOGS_DATA_DIR names yours.
    with _environment(**values, CFLOGS_DATA_DIR=str(data_dir)):
        with console.status("generating a week of CloudFront logs"):
            truth, fresh = _sample_logs(data_dir / "logs", days, visitors_per_hour, seed)
        console.print(
            f"{'generated' if fresh else 'reusing'} {truth.files} log files, "
            f"{truth.lines:,} lines in {data_dir / 'logs'}"
        )
        with console.status("starting the embedded PostgreSQL and an in-process S3"):
            conn = db.connect(Settings.from_env(), autocommit=True)
            db.migrate(conn)
        with conn, _in_process_s3() as s3:
            _load_and_stitch(root, data_dir, truth, s3, console)
            found = report.build(conn)
            cards = found[0].cards
            unlocated = conn.execute(
                "SELECT count(*) FROM page_views WHERE country_code IS NULL"
            ).fetchone()[0]
        db.close_shared_connection()  # the handlers' connection, as Lambda would drop it

    report.print_report(found, console, tables=False)
    checks = {
        "human page views": (cards["page views"], truth.human_page_views),
        "human visitors": (cards["visitors"], truth.human_visitors),
        "sessions": (cards["sessions"], truth.sessions),
        "page views without a country": (unlocated, 0),
    }
    table = Table(title="checked against the generator's ground truth")
    for column in ("figure", "pipeline", "ground truth", ""):
        table.add_column(column)
    for name, (got, expected) in checks.items():
        mark = "[green]ok[/green]" if got == expected else "[red]differs[/red]"
        table.add_row(name, f"{got:,}", f"{expected:,}", mark)
    console.print(table)
    if html_path:
        html_path.write_text(render.static_report(found))
    console.print(
        f"demo finished in {time.perf_counter() - started:.1f} s; its database: {data_dir / 'pg'}"
    )
    console.print(
        "Open the dashboard on the demo's data: [bold]make serve[/bold] (or "
        "[bold].venv/bin/cflogs serve[/bold]), then http://127.0.0.1:8080/"
    )
    console.print(
        "In the terminal: [bold].venv/bin/cflogs report[/bold] (--json for scripts)"
        + (f"; one HTML file: {html_path}" if html_path else "")
    )
    return checks


def _load_and_stitch(root: Path, data_dir: Path, truth, s3, console) -> None:
    """Put each file as CloudFront would (delivery order), firing IngestFunction with
    the S3 event for it, then run StitchFunction on its schedule event until done."""
    from aws_lambda_powertools import Metrics

    from .cli import progress_bar

    functions = Functions(root / "template.yaml")
    s3.create_bucket(Bucket=BUCKET)
    # The generated addresses are in no real database: always the generated one
    # (the environment is put back when the demo ends).
    key = "geoip/GeoLite2-City.mmdb"
    s3.upload_file(str(geodb.write(data_dir / "generated-City.mmdb")), BUCKET, key)
    os.environ.pop("GEOIP_DB_PATH", None)
    os.environ["GEOIP_DB_S3_URI"] = f"s3://{BUCKET}/{key}"
    files = truth.files_in_delivery_order()
    with progress_bar(console) as progress:
        task = progress.add_task("put + IngestFunction", total=len(files))
        for log_file in files:
            body = (data_dir / "logs" / log_file.name).read_bytes()
            key = PREFIX + log_file.name
            put = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            functions(
                "IngestFunction", s3_put_event(BUCKET, key, put["ETag"].strip('"'), len(body))
            )
            # Disabled metrics are neither printed nor dropped by the handler's flush;
            # at 100 values Powertools prints them anyway: drop them (class-level store).
            Metrics().clear_metrics()
            progress.advance(task)
    with console.status("StitchFunction"):
        schedule = read_event(root / "events" / "schedule.json")
        for _ in range(100):
            if not functions("StitchFunction", schedule).get("backlog"):
                break
