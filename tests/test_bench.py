"""The benchmark command runs and its synthetic file looks like real traffic
(figures are for `make bench`, not for tests)."""

from __future__ import annotations

import io

from cflogs import bench, parser
from cflogs.classify import PAGE, kind_of


def test_synthetic_file_has_realistic_variety():
    data = bench.synthetic_log(5000, distinct_agents=400, distinct_ips=1000)
    stats = parser.Stats()
    records = list(parser.parse(parser.open_lines(io.BytesIO(data)), stats))
    assert stats.lines == len(records) == 5000 and not stats.rejected
    pages = [r for r in records if kind_of(r[5], r[8], r[14], r[7]) is PAGE]
    assert 0.1 <= len(pages) / len(records) <= 0.3
    assert len({r[10] for r in records}) > 200
    assert len({r[4] for r in records}) > 500


def test_bench_command_prints_its_figures(capsys):
    bench.main(["--lines", "3000", "--agents", "100", "--runs", "1"])
    out = capsys.readouterr().out
    assert "3,000 lines" in out
    assert "parse+enrich, no database" in out
    assert "distinct user agents" in out
