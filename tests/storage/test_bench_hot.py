"""Smoke run of the hot-store benchmark on a few rows (figures are not asserted: noisy)."""

from __future__ import annotations

from benchmarks import bench_hot


def test_bench_hot_runs_end_to_end(pg_admin_url, capsys):
    result = bench_hot.main(rows=2_000)
    out = capsys.readouterr().out
    assert "psql \\copy" in out and "pandas.to_sql" in out
    assert set(result["rows_per_s"]) == {
        bench_hot.APPEND,
        bench_hot.IDENTICAL,
        bench_hot.CHANGED,
        bench_hot.PSQL,
        bench_hot.TO_SQL,
    }
    assert all(rate > 0 for rate in result["rows_per_s"].values())
