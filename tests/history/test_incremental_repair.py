"""Incremental runs start at the watermark minus the overlap; `gaps` across hot ∪ cold (holiday,
early close, DST); `backfill --repair` restores deleted rows from both tiers with the fewest
requests; the estimate matches the requests made; job_runs records failures with the error."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import parse_qs, urlparse

import pandas as pd

from marketpipe.bars import conform_bars
from marketpipe.calendar import expected_bar_starts, sessions
from tests.history.conftest import all_rows, mp, stores_for
from tests.polygon_server import agg_requests

PLAN_RE = re.compile(r"backfill plan: .*?(\d+) chunks \((\d+) already done\), (\d+) requests")


def _one_per_session(env, symbols, start, end):
    stores = stores_for(env)
    try:
        hot, cold = all_rows(stores, symbols, start, end)
    finally:
        stores.close()
    both = pd.concat([hot, cold], ignore_index=True)
    assert not both.duplicated(["symbol", "interval", "ts"]).any()
    want = list(sessions(start, end))
    for sym in symbols:
        got = pd.DatetimeIndex(both.loc[both["symbol"] == sym, "ts"]).tz_convert(None)
        assert list(got.sort_values()) == want, sym
    return hot, cold


def test_incremental_run_fetches_watermark_minus_overlap_to_today(base_env, poly, market, gaps_cli):
    env = dict(base_env)
    syms = "AAPL,MSFT"
    res = mp(
        env,
        "backfill",
        "--source",
        "polygon",
        "--symbols",
        syms,
        "--start",
        "2026-09-01",
        "--end",
        "2026-10-30",
        "--interval",
        "1d",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    seen_before = len(poly.seen)

    res = mp(env, "run", "--source", "polygon", "--symbols", syms, "--interval", "1d")
    assert res.returncode == 0, res.stdout + res.stderr
    new = poly.seen[seen_before:]
    aggs = agg_requests(poly)[-2:]
    today = pd.Timestamp.now(tz="UTC").date()
    # watermark 2026-10-30 (Fri) minus 3 sessions → 2026-10-27 (Tue), up to today; nothing older
    assert sorted(a.symbol for a in aggs) == ["AAPL", "MSFT"]
    assert {(a.start, a.end) for a in aggs} == {("2026-10-27", str(today))}, aggs
    for s in new:
        q = {k: v[0] for k, v in parse_qs(urlparse(s.path).query).items()}
        lows = [v for k, v in q.items() if k.endswith(".gte")]
        assert all(v == "2026-10-27" for v in lows), s.path
    assert len(new) == 2 * 3  # aggregates + splits + dividends per symbol, no ticker lookups
    _one_per_session(env, ["AAPL", "MSFT"], date(2026, 9, 1), market.last)
    code, out = gaps_cli(env, "--symbols", syms, "--start", "2026-09-01", "--end", str(market.last))
    assert code == 0, out


def _write_both_tiers(stores, frame: pd.DataFrame, hot_from: pd.Timestamp) -> None:
    frame = conform_bars(frame)
    cold, hot = frame[frame["ts"] < hot_from], frame[frame["ts"] >= hot_from]
    if len(cold):
        stores.cold.write_bars(cold)
    if len(hot):
        stores.hot.upsert_bars(hot)


def _bars(symbol: str, interval: str, ts: pd.DatetimeIndex) -> pd.DataFrame:
    n = len(ts)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "interval": interval,
            "ts": ts,
            "open": 10.0,
            "high": 11.0,
            "low": 9.0,
            "close": 10.5,
            "volume": 100.0,
            "vwap": 10.2,
            "trades": 5.0,
            "source": "replay",
            "ingested_at": pd.Timestamp.now(tz="UTC"),
        },
        index=range(n),
    )


def test_gaps_cli_holiday_early_close_dst_across_hot_and_cold(tmp_path, monkeypatch, capsys):
    """`gaps` needs no Prefect: the console entry point runs in-process (fast) on SQLite + lake."""
    import os

    from cli.main import main

    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    env["MARKETPIPE_DATA_DIR"] = str(tmp_path / "data")
    for k in [k for k in os.environ if k.startswith("MARKETPIPE_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", env["MARKETPIPE_DATA_DIR"])

    def gaps(*args):
        capsys.readouterr()
        code = main(["gaps", *args])
        return code, capsys.readouterr().out

    cases = [
        # (interval, start, end, dropped bars, tier split, expected output line)
        (
            "1d",
            "2024-07-01",
            "2024-07-09",
            ["2024-07-03", "2024-07-05"],
            "2024-07-05",
            "  2024-07-03T00:00:00+00:00 .. 2024-07-05T00:00:00+00:00  (2 bars)",
        ),
        (
            "1h",
            "2024-03-08",
            "2024-03-11",
            ["2024-03-08 20:30", "2024-03-11 13:30"],
            "2024-03-09",
            "  2024-03-08T20:30:00+00:00 .. 2024-03-11T13:30:00+00:00  (2 bars)",
        ),
    ]
    stores = stores_for(env)
    try:
        for ivl, lo, hi, drop, split, _ in cases:
            exp = expected_bar_starts(ivl, lo, hi)
            keep = exp.difference(pd.DatetimeIndex(pd.to_datetime(drop, utc=True)))
            _write_both_tiers(stores, _bars("AAPL", ivl, keep), pd.Timestamp(split, tz="UTC"))
        # 1m across the 2024-11-29 early close (13:00 ET): Friday cold, Monday hot
        exp = expected_bar_starts("1m", "2024-11-29", "2024-12-02")
        friday = exp[exp < pd.Timestamp("2024-11-30", tz="UTC")]
        drop = list(friday[-10:]) + list(exp[len(friday) : len(friday) + 5])
        keep = exp.difference(pd.DatetimeIndex(drop))
        _write_both_tiers(stores, _bars("AAPL", "1m", keep), pd.Timestamp("2024-11-30", tz="UTC"))
        assert stores.cold.read_bars(["AAPL"], "1m").shape[0] == len(friday) - 10
    finally:
        stores.close()
    cases.append(
        (
            "1m",
            "2024-11-29",
            "2024-12-02",
            None,
            None,
            "  2024-11-29T17:50:00+00:00 .. 2024-12-02T14:34:00+00:00  (15 bars)",
        )
    )
    for ivl, lo, hi, _, _, line in cases:
        code, out = gaps("--symbols", "AAPL", "--start", lo, "--end", hi, "--interval", ivl)
        assert code == 1, out
        assert "AAPL: " in out and "in 1 range(s)" in out, out
        assert line in out.splitlines(), out
    # a range with everything present: exit 0 (and the real console script agrees)
    code, out = gaps("--symbols", "AAPL", "--start", "2024-07-08", "--end", "2024-07-09")
    assert code == 0 and "AAPL: 0 missing in 0 range(s)" in out, out
    res = mp(env, "gaps", "--symbols", "AAPL", "--start", "2024-07-01", "--end", "2024-07-09")
    assert res.returncode == 1 and "AAPL: 2 missing in 1 range(s)" in res.stdout, res.stdout


def test_repair_restores_deleted_rows_from_both_tiers_with_fewest_requests(
    base_env, poly, market, pg_url, gaps_cli
):
    env = dict(base_env, MARKETPIPE_HOT_URL=pg_url)
    syms, lo, hi = "AAPL,MSFT", date(2026, 8, 3), market.last
    args = ["--source", "polygon", "--symbols", syms, "--start", str(lo), "--end", str(hi)]
    res = mp(env, "backfill", *args)
    assert res.returncode == 0, res.stdout + res.stderr
    printed = int(PLAN_RE.search(res.stdout).group(3))
    assert printed == len(poly.seen) == 6  # estimate == requests made

    stores = stores_for(env)
    try:
        hot, cold = all_rows(stores, ["AAPL", "MSFT"], lo, hi)
        assert len(hot) and len(cold)
        recent = pd.DatetimeIndex(hot.loc[hot["symbol"] == "AAPL", "ts"])[2:5]
        assert (
            stores.hot.delete_bars("AAPL", "1d", recent[0], recent[-1] + pd.Timedelta(days=1)) == 3
        )
        old = pd.DatetimeIndex(["2026-08-10", "2026-08-11", "2026-08-12"], tz="UTC")
        assert stores.cold.delete_partition_rows("1d", "AAPL", 2026, old) == 3
        assert (
            stores.cold.delete_partition_rows(
                "1d", "MSFT", 2026, [pd.Timestamp("2026-09-15", tz="UTC")]
            )
            == 1
        )
    finally:
        stores.close()

    code, out = gaps_cli(env, "--symbols", syms, "--start", str(lo), "--end", str(hi))
    assert code == 1
    assert "AAPL: 6 missing in 2 range(s)" in out and "MSFT: 1 missing in 1 range(s)" in out

    before = len(poly.seen)
    res = mp(env, "backfill", "--repair", *args)
    assert res.returncode == 0, res.stdout + res.stderr
    made = len(poly.seen) - before
    # one window per symbol (AAPL's two gaps fit one request) × (aggregates + splits + dividends)
    assert int(PLAN_RE.search(res.stdout).group(3)) == made == 6
    aggs = {a.symbol: (a.start, a.end) for a in agg_requests(poly)[-2:]}
    assert aggs == {
        "AAPL": ("2026-08-10", str(recent[-1].date())),
        "MSFT": ("2026-09-15", "2026-09-15"),
    }
    _one_per_session(env, ["AAPL", "MSFT"], lo, hi)
    code, out = gaps_cli(env, "--symbols", syms, "--start", str(lo), "--end", str(hi))
    assert code == 0, out

    # a failing backfill ends its job_runs row as failed, with the error
    res = mp(
        env,
        "backfill",
        "--source",
        "polygon",
        "--symbols",
        "NOPE",
        "--start",
        "2026-10-01",
        "--end",
        "2026-10-02",
    )
    assert res.returncode == 1 and "unknown" in res.stderr.lower(), res.stderr
    stores = stores_for(env)
    try:
        job = stores.hot.recent_jobs(1)[0]
    finally:
        stores.close()
    assert job["job"] == "historical" and job["status"] == "failed"
    assert "NOPE" in job["error"] and "unknown" in job["error"].lower()
