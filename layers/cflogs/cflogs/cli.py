"""The cflogs command line: the same library the Lambda functions run."""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import psycopg
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from . import aws, db, ingest, s3
from .config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cflogs", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("migrate", help="apply pending database migrations")

    p = commands.add_parser("ingest", help="load log files, directories, globs or s3:// prefixes")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")

    p = commands.add_parser("invoke", help="run a template.yaml function in-process with an event")
    p.add_argument("function", help="logical id, e.g. IngestFunction")
    p.add_argument("event", type=Path, help="event JSON file, e.g. events/s3-put.json")
    p.add_argument("--template", type=Path, default=Path("template.yaml"))

    p = commands.add_parser("stitch", help="bring sessions and visitors up to date")
    p.add_argument("--budget", type=float, help="stop starting batches after this many seconds")
    p.add_argument("--batch-size", type=int, help="queue entries per batch (one transaction)")

    p = commands.add_parser("backfill", help="load (or queue) what S3 has and the ledger lacks")
    p.add_argument("prefixes", nargs="+", metavar="s3://BUCKET/PREFIX")
    p.add_argument("--since", help="first hour or day, UTC (2024-01-01 or 2024-01-01T05)")
    p.add_argument("--until", help="last hour or day, inclusive")
    p.add_argument("--queue-url", help="send to this ingest queue instead of loading here")
    p.add_argument("--reprocess", action="store_true", help="everything in range, loaded or not")

    commands.add_parser("status", help="ledger summary and the objects that failed")

    p = commands.add_parser("retention", help="drop page views (and what they made) by month")
    p.add_argument(
        "--keep-months",
        type=int,
        required=True,
        metavar="N",
        help="keep the current month and the N before it",
    )

    p = commands.add_parser("generate", help="write realistic sample CloudFront logs")
    p.add_argument("outdir", type=Path)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--visitors-per-hour", type=float, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=date.fromisoformat, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--distribution-id", default=None)
    p.add_argument("--layout", type=int, default=33, help="fields per line: 12..33, or 39 (v2)")
    p.add_argument("--host", action="append", dest="hosts", help="site host (repeatable)")
    p.add_argument("--no-gzip", action="store_true")
    p.add_argument("--lines", type=int, help="instead: one file of exactly N lines (benchmarks)")

    p = commands.add_parser("report", help="print the analytics report (and write HTML)")
    p.add_argument("--since", type=date.fromisoformat, help="first day, YYYY-MM-DD")
    p.add_argument("--until", type=date.fromisoformat, help="last day, inclusive")
    p.add_argument("--host", help="only this site host")
    p.add_argument("--tz", default="UTC", help="time zone of the days, e.g. Europe/Berlin")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained page")
    p.add_argument("--json", action="store_true", help="print every figure as JSON")
    p.add_argument("--demo", action="store_true", help="the demo's database (after make demo)")

    p = commands.add_parser("serve", help="the dashboard in your browser (http://127.0.0.1:8080)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--demo", action="store_true", help="the demo's database (after make demo)")

    p = commands.add_parser("demo", help="the whole pipeline on generated logs, locally")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--visitors-per-hour", type=float, default=200)
    p.add_argument("--data-dir", type=Path, help="default: demo/ in the data folder")
    p.add_argument("--html", type=Path, default=Path("report.html"))

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("cflogs: interrupted", file=sys.stderr)
        return 130
    except (db.ConfigError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"cflogs: {exc}", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        print(f"cflogs: {database_problem(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, psycopg.ProgrammingError | psycopg.InterfaceError) else 1
    except (BotoCoreError, ClientError) as exc:
        # no credentials, an unknown profile or region, no connection (BotoCoreError);
        # a bucket, key or queue that is not there or not ours (ClientError)
        message = NO_CREDENTIALS if isinstance(exc, NoCredentialsError) else str(exc)
        if args.command == "invoke":
            message += " The events in events/ name an example bucket: point them at yours."
        print(f"cflogs: {message}", file=sys.stderr)
        return 2 if isinstance(exc, BotoCoreError) else 1


def database_problem(exc: psycopg.Error) -> str:
    """One line for a database error, saying what to check."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg.OperationalError):
        return (
            f"cannot use the database: {first}. Check DATABASE_URL (or unset it for the "
            "embedded server) and that the server is up."
        )
    return f"database error: {first}"


NO_CREDENTIALS = (
    "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "for commands that use S3, SQS or Secrets Manager (`make demo` needs none)."
)


def cmd_migrate(args) -> int:
    with db.connect() as conn:
        applied = db.migrate(conn)
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")
    return 0


def expand(paths: list[str]) -> Iterator[ingest.Source]:
    """Sources for local files, directories (their *.gz and *.log files, recursively),
    globs, and s3://bucket/prefix listings."""
    for path in paths:
        if path.startswith("s3://"):
            bucket, prefix = s3.parse_uri(path)
            pages = aws.client("s3").get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield s3.s3_source(bucket, obj["Key"], obj["ETag"].strip('"'), obj["Size"])
            continue
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not matches:
            raise FileNotFoundError(f"no files match {path}")
        for match in matches:
            found = Path(match)
            if found.is_dir():
                for file in sorted(found.rglob("*")):
                    if file.is_file() and file.name.endswith((".gz", ".log")):
                        yield ingest.local_source(file)
            elif found.exists():
                yield ingest.local_source(found)
            else:
                raise FileNotFoundError(f"no such file: {match}")


def cmd_ingest(args) -> int:
    from rich.console import Console
    from rich.table import Table

    sources = list(expand(args.paths))
    console = Console(stderr=args.json)
    settings = Settings.from_env()
    pipeline = ingest.Pipeline(settings)
    results: list[ingest.FileResult] = []
    conn = db.connect(settings)
    try:
        db.migrate(conn)
        with progress_bar(console) as progress:
            task = progress.add_task("ingesting", total=len(sources))
            for source in sources:
                progress.update(task, description=Path(source.key).name)
                conn, result = ingest.ingest_in_run(conn, source, pipeline)
                results.append(result)
                progress.advance(task)
    finally:
        conn.close()

    failed = [r for r in results if r.status != "done"]
    totals = {
        "objects": len(results),
        "failed": len(failed),
        "lines": sum(r.lines for r in results),
        "page_views": sum(r.page_views for r in results),
        "bot_page_views": sum(r.bot_page_views for r in results),
        "assets": sum(r.assets for r in results),
        "rejected": sum(r.rejected for r in results),
        "seconds": round(sum(r.seconds for r in results), 3),
    }
    totals["lines_per_second"] = (
        round(totals["lines"] / totals["seconds"]) if totals["seconds"] else 0
    )
    if args.json:
        print(json.dumps({"totals": totals, "objects": [r.as_dict() for r in results]}, indent=2))
    else:
        table = Table(title="cflogs ingest")
        for column in (
            "objects",
            "lines",
            "page views",
            "bots",
            "assets",
            "rejected",
            "failed",
            "lines/s",
        ):
            table.add_column(column, justify="right")
        table.add_row(
            *(
                f"{totals[k]:,}"
                for k in (
                    "objects",
                    "lines",
                    "page_views",
                    "bot_page_views",
                    "assets",
                    "rejected",
                    "failed",
                    "lines_per_second",
                )
            )
        )
        console.print(table)
        for result in failed:
            console.print(f"[red]failed[/red] {result.key}: {result.reason}")
    return 1 if failed else 0


def progress_bar(console):
    """The progress bar every long command shows."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def cmd_stitch(args) -> int:
    from rich.console import Console

    from . import sessions

    settings = Settings.from_env()
    with db.connect(settings) as conn, Console().status("stitching sessions"):
        db.migrate(conn)
        result = sessions.stitch(conn, settings.session_timeout_minutes, time_budget_s=args.budget)
    print(json.dumps(result.as_dict(), indent=2))
    return 0


def cmd_backfill(args) -> int:
    from rich.console import Console

    from . import backfill

    request = backfill.Request(args.prefixes, args.since, args.until, args.reprocess)
    console = Console()
    with db.connect() as conn, progress_bar(console) as progress:
        db.migrate(conn)
        task = progress.add_task("backfill", total=None)
        done_key = "enqueued" if args.queue_url else "loaded"

        def show(counts):
            done = counts[done_key] + counts["load_failed"]
            progress.update(task, total=counts["planned"] or None, completed=done)

        result = backfill.backfill(conn, request, queue_url=args.queue_url, on_progress=show)
    counts = {k: v for k, v in sorted(result.counts.items()) if v}
    print(json.dumps(counts, indent=2))
    return 1 if result.counts["load_failed"] else 0


def cmd_status(args) -> int:
    from . import backfill

    with db.connect() as conn:
        db.migrate(conn)
        summary = backfill.status(conn)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_retention(args) -> int:
    from . import retention

    if args.keep_months < 1:
        print("cflogs: --keep-months must be at least 1", file=sys.stderr)
        return 2
    with db.connect() as conn:
        db.migrate(conn)
        result = retention.apply(conn, args.keep_months)
    print(json.dumps(result.as_dict(), indent=2))
    return 0


def cmd_generate(args) -> int:
    from . import generate

    options = {"seed": args.seed, "layout": args.layout, "gz": not args.no_gzip}
    if args.start:
        options["start"] = args.start
    if args.distribution_id:
        options["distribution_id"] = args.distribution_id
    if args.hosts:
        options["hosts"] = tuple(args.hosts)
    if args.lines:
        args.outdir.mkdir(parents=True, exist_ok=True)
        name = f"{options.get('distribution_id', generate.DEFAULT_DISTRIBUTION)}.bench.log"
        path = args.outdir / (name + (".gz" if options["gz"] else ""))
        truth = generate.generate_file(path, lines=args.lines, **options)
    else:
        truth = generate.generate(
            args.outdir, days=args.days, visitors_per_hour=args.visitors_per_hour, **options
        )
    summary = {k: v for k, v in truth.as_dict().items() if not isinstance(v, list | dict)}
    print(json.dumps(summary, indent=2))
    return 0


def dashboard_settings(use_demo: bool) -> tuple[Settings, str | None]:
    """Settings for report and serve, and what they read when it is the demo's
    database: with --demo, or when there is no local database of one's own yet
    but `make demo` has made its own (under the data folder's demo/)."""
    settings = Settings.from_env()
    if settings.database_url or settings.db_secret_arn or settings.db_host:
        return settings, None
    demo = settings.data_dir / "demo"
    own_missing = not (settings.data_dir / "pg").exists()
    if use_demo or (own_missing and (demo / "pg").exists()):
        return replace(settings, data_dir=demo), f"the demo's database in {demo / 'pg'}"
    return settings, None


def _no_data_hint(settings: Settings) -> str:
    demo = settings.data_dir / "demo" / "pg"
    if not settings.database_url and demo.exists() and settings.data_dir.name != "demo":
        return f"; the demo's data is in {demo}: add --demo"
    return ""


def cmd_report(args) -> int:
    from . import report

    settings, which = dashboard_settings(args.demo)
    with db.connect(settings, autocommit=True) as conn:
        db.migrate(conn)
        found = report.build(conn, args.since, args.until, args.host, args.tz)
    if found is None:
        print(report.NO_DATA + _no_data_hint(settings), file=sys.stderr)
        return 0
    if which:
        print(f"cflogs: showing {which}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_json(found), indent=2, default=str))
    else:
        report.print_report(found)
    if args.html:
        from .dashboard import render

        args.html.write_text(render.static_report(found))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def cmd_serve(args) -> int:
    from .dashboard import app

    settings, which = dashboard_settings(args.demo)
    conn = db.connect(settings, autocommit=True)
    db.migrate(conn)

    def connection():
        nonlocal conn
        conn = db.reconnected(conn, settings)
        return conn

    def ready(server):
        print(f"cflogs dashboard: http://{args.bind}:{server.server_port}/  (Ctrl-C stops it)")
        if which:
            print(f"showing {which}")
        from .dashboard import queries

        if queries.data_range(conn) is None:
            print(report_no_data() + _no_data_hint(settings))

    try:
        app.serve(connection, args.bind, args.port, ready)
    finally:
        conn.close()
    return 0


def report_no_data() -> str:
    from .report import NO_DATA

    return NO_DATA


def cmd_demo(args) -> int:
    from . import demo

    checks = demo.run(
        data_dir=args.data_dir,
        days=args.days,
        visitors_per_hour=args.visitors_per_hour,
        html_path=args.html,
    )
    return 0 if all(got == expected for got, expected in checks.values()) else 1


def cmd_invoke(args) -> int:
    from .invoke import invoke, read_event

    # As `sam local invoke` does: the function's logs on stderr, its result on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        result = invoke(args.function, read_event(args.event), args.template)
    print(json.dumps(result, indent=2, default=str))
    return 0


COMMANDS = {
    "migrate": cmd_migrate,
    "ingest": cmd_ingest,
    "invoke": cmd_invoke,
    "generate": cmd_generate,
    "stitch": cmd_stitch,
    "backfill": cmd_backfill,
    "status": cmd_status,
    "retention": cmd_retention,
    "report": cmd_report,
    "serve": cmd_serve,
    "demo": cmd_demo,
}


if __name__ == "__main__":
    sys.exit(main())
