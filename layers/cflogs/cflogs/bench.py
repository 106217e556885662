"""Benchmarks (`make bench`, `python -m cflogs.bench`): the performance figures on
this machine, printed; a benchmark, not a test. The log file comes from
cflogs.generate (thousands of distinct user agents and addresses), written to a
temporary folder; the database is a fresh one on DATABASE_URL's server or an
embedded server, dropped afterwards.

- parse only: gunzip and parser.parse.
- parse+enrich, no database: ingest.read_records (classify, rollups, decoding,
  enrichment, visitor ids) with caches emptied before each run, as for the first
  file a fresh process sees. GeoIP from GEOIP_DB_PATH if set, else from a City
  database written for the generator's addresses (cflogs.geodb).
- end-to-end ingest: `cflogs ingest FILE` in a child process, gz file to committed
  rows, with the child's peak RSS.
- the same, for the same requests as standard logging v2 JSON (gzipped) and
  Parquet (snappy, row groups of PARQUET_ROW_GROUP): lines/s beside text's.
- cold start: a child process that imports the ingest handler and connects."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import classify, db, formats, generate, geodb, ingest, parser, useragent
from .config import Settings

ROOT = Path(__file__).resolve().parents[3]  # the repository, for functions/ingest
PARQUET_ROW_GROUP = 100_000


def _text_rows(data: bytes) -> tuple[list[str], list[list[str]]]:
    lines = gzip.decompress(data).decode().splitlines()
    names = next(line for line in lines if line.startswith("#Fields:"))[8:].split()
    return names, [line.split("\t") for line in lines if line and line[0] != "#"]


def as_json_lines(data: bytes) -> bytes:
    """A gzipped text log as v2 JSON output: an object a line, W3C names as keys."""
    names, rows = _text_rows(data)
    text = "".join(json.dumps(dict(zip(names, row, strict=True))) + "\n" for row in rows)
    return gzip.compress(text.encode(), compresslevel=1)


def as_parquet(data: bytes) -> bytes:
    """A gzipped text log as v2 Parquet output: snake_case columns of text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names, rows = _text_rows(data)
    columns = {formats._key(name): [row[i] for row in rows] for i, name in enumerate(names)}
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, row_group_size=PARQUET_ROW_GROUP)
    return buffer.getvalue()


def parse_and_enrich(data: bytes, pipeline: ingest.Pipeline) -> tuple[int, int]:
    """ingest's per-line work without the database: (lines, page views)."""
    stats = parser.Stats()
    tally = ingest.read_records(io.BytesIO(data), 0, pipeline, stats, lambda row: None)
    return stats.lines, tally.pages


def clear_caches(pipeline: ingest.Pipeline) -> None:
    pipeline.enricher.clear()
    pipeline.visitors.clear()
    classify.is_html_path.cache_clear()
    classify.is_html_type.cache_clear()
    parser._decode_cached.cache_clear()


def timed(
    function: Callable[[], object], runs: int, pipeline: ingest.Pipeline
) -> tuple[float, float]:
    """Median wall-clock and CPU seconds over the runs (CPU is the steadier figure
    on a shared machine)."""
    wall, cpu = [], []
    for _ in range(runs):
        clear_caches(pipeline)
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


# Appended to a child's code: its own peak RSS (VmHWM, of the program after exec;
# getrusage would also count the pages of this large process it was forked from).
_PEAK_RSS = (
    "\nimport sys; status = open('/proc/self/status').read()"
    "\nprint(status.split('VmHWM:')[1].split()[0], file=sys.stderr)"
)


def child(code: str, env: dict) -> tuple[float, float, str, float]:
    """Run python code in a child process: (wall seconds, peak RSS MB, stdout, CPU
    seconds of the child, all its threads, from start to exit)."""
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", code + _PEAK_RSS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return wall, peak_kb / 1024, done.stdout, cpu


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f}/s" if seconds else "n/a"


def main(argv: list[str] | None = None) -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--lines", type=int, default=500_000)
    options.add_argument("--runs", type=int, default=3)
    args = options.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cflogs-bench-") as folder:
        path = Path(folder) / f"{generate.DEFAULT_DISTRIBUTION}.2025-06-02-10.bench.gz"
        started = time.perf_counter()
        truth = generate.generate_file(path, lines=args.lines)
        data = path.read_bytes()
        agents = len(
            {
                record[parser.RECORD.index("user_agent")]
                for record in parser.parse(parser.open_lines(io.BytesIO(data)), parser.Stats())
            }
        )
        print(
            f"file: {truth.lines:,} lines, {truth.page_views:,} page views, {agents:,} distinct "
            f"user agents, {len(data) / 1e6:.1f} MB gzipped "
            f"(generated in {time.perf_counter() - started:.1f} s)"
        )
        geoip = os.environ.get("GEOIP_DB_PATH") or str(geodb.write(Path(folder) / "City.mmdb"))
        print(f"GeoIP database: {geoip}")
        settings = Settings(geoip_db_path=geoip, visitor_id_secret="bench-key-0123456789abcdef")
        pipeline = ingest.Pipeline(settings)
        useragent.columns("build the user-agent matchers before timing")
        if pipeline.enricher.geo.reader is None:  # open the GeoIP database likewise
            raise SystemExit(f"cannot open the GeoIP database {geoip} (see the warning above)")

        def parse_only():
            for _ in parser.parse(parser.open_lines(io.BytesIO(data)), parser.Stats()):
                pass

        outputs = {"text": path}
        converted = {
            name: convert(data)
            for name, convert in (("JSON", as_json_lines), ("Parquet", as_parquet))
        }
        for name, content in converted.items():
            outputs[name] = path.with_suffix(f".{name.lower()}")
            outputs[name].write_bytes(content)

        for name, function in (
            ("parse only", parse_only),
            ("parse+enrich, no database", lambda: parse_and_enrich(data, pipeline)),
            *(
                (f"parse+enrich, {name}", lambda d=content: parse_and_enrich(d, pipeline))
                for name, content in converted.items()
            ),
        ):
            wall, cpu = timed(function, args.runs, pipeline)
            print(
                f"{name:30s} {rate(truth.lines, wall)} lines "
                f"(median of {args.runs}; per CPU second {truth.lines / cpu:,.0f})"
            )

        with db.throwaway_server() as server:
            text_rate = None
            for name, file in outputs.items():  # each format into a database of its own
                with db.scratch_database(server, "cflogs_bench") as url:
                    env = {
                        **os.environ,
                        "DATABASE_URL": url,
                        "VISITOR_ID_SECRET": "bench-key-0123456789",
                        "GEOIP_DB_PATH": geoip,
                    }
                    code = f"from cflogs import cli; cli.main(['ingest', '--json', {str(file)!r}])"
                    for attempt in ("first load", "replay") if name == "text" else ("first load",):
                        _, peak, out, cpu = child(code, env)
                        totals = json.loads(out)["totals"]
                        per_cpu = totals["lines"] / cpu
                        text_rate = text_rate or per_cpu
                        label = f"end-to-end ingest, {attempt}"
                        label += "" if name == "text" else f", {name}"
                        print(
                            f"{label:40s} {rate(totals['lines'], totals['seconds'])} lines "
                            f"(per CPU second of the process {per_cpu:,.0f}, "
                            f"{text_rate / per_cpu:.2f}x text's; peak RSS {peak:,.0f} MB)"
                        )
            with db.scratch_database(server, "cflogs_bench") as url:
                with db.connect(Settings(database_url=url)) as conn:
                    db.migrate(conn)  # as a deployed database is: the cold start only checks
                env["DATABASE_URL"] = url
                handler = ROOT / "functions" / "ingest" / "app.py"
                code = (
                    "import time, importlib.util; t = time.perf_counter(); "
                    f"spec = importlib.util.spec_from_file_location('app', {str(handler)!r}); "
                    "app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app); "
                    "from cflogs import db; db.shared_connection(app.settings); "
                    "print(time.perf_counter() - t)"
                )
                env.update(POWERTOOLS_SERVICE_NAME="cflogs", POWERTOOLS_METRICS_NAMESPACE="bench")
                seconds = [float(child(code, env)[2]) for _ in range(args.runs)]
                print(f"cold start (import + connect)  {statistics.median(seconds):10.2f} s")


if __name__ == "__main__":
    main()
