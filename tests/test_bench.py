"""The benchmark command runs end to end on a small file (its figures are for
`make bench`, not for tests)."""

from cflogs import bench


def test_bench_command_prints_every_figure(env, capsys):
    bench.main(["--lines", "3000", "--runs", "1"])
    out = capsys.readouterr().out
    assert "3,000 lines" in out
    for figure in ("parse only", "parse+enrich, no database", "end-to-end ingest", "cold start"):
        assert figure in out
