"""The benchmark command runs end to end on a small file (its figures are for
`make bench`, not for tests)."""

import pytest

from cflogs import bench, bench_scale


def test_bench_command_prints_every_figure(env, capsys):
    bench.main(["--lines", "3000", "--runs", "1"])
    out = capsys.readouterr().out
    assert "3,000 lines" in out
    assert "GeoIP database: " in out  # parse+enrich looks places up, as a deployment does
    for figure in ("parse only", "parse+enrich, no database", "end-to-end ingest", "cold start"):
        assert figure in out
    for output in ("JSON", "Parquet"):  # beside text, the same requests
        assert f"parse+enrich, {output}" in out
        assert f"end-to-end ingest, first load, {output}" in out


def test_bench_stops_when_its_geoip_database_cannot_be_opened(env, monkeypatch, tmp_path):
    monkeypatch.setenv("GEOIP_DB_PATH", str(tmp_path / "absent.mmdb"))
    with pytest.raises(SystemExit, match="absent.mmdb"):
        bench.main(["--lines", "1000", "--runs", "1"])


def test_scale_bench_prints_its_table(env, capsys):
    bench_scale.main(["--sizes", "3000", "--file-lines", "2000", "--runs", "1"])
    out = capsys.readouterr().out
    assert "new file: 2,000 lines" in out
    table = out.split("| stored page views")[1].splitlines()
    assert table[2].startswith("| 0.0M |")  # about 3,000 page views stored
    assert "x) |" in table[2]  # ratios to the empty database
