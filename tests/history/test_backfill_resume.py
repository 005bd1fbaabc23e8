"""Issue 4 "done when": plan-only estimate with no requests; a 20-symbol × 2-year daily backfill
that makes exactly the requests it printed, survives SIGKILL and resumes with unfinished chunks
only, lands one row per XNYS session per symbol across hot (PostgreSQL) ∪ cold (S3 on moto), and
then `marketpipe gaps` reports nothing missing."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter

import pandas as pd

from marketpipe.calendar import sessions
from tests.history.conftest import SYMBOLS, all_rows, mp, mp_popen, stores_for, wait_for
from tests.polygon_server import agg_requests

PLAN_RE = re.compile(r"backfill plan: .*?(\d+) chunks \((\d+) already done\), (\d+) requests")


def test_plan_only_200_symbols_5_years_makes_no_request(base_env, poly):
    env = dict(base_env, MARKETPIPE_POLYGON_RATE_LIMIT="5/min")
    syms = ",".join(f"T{i:03d}" for i in range(200))
    t0 = time.monotonic()
    res = mp(
        env,
        "backfill",
        "--plan-only",
        "--source",
        "polygon",
        "--symbols",
        syms,
        "--start",
        "2020-01-01",
        "--end",
        "2024-12-31",
        "--interval",
        "1d",
    )
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    # 200 chunks (5 years of daily bars fit one 50k-bar request) × (1 aggregates + 2 actions)
    assert "200 chunks (0 already done), 600 requests" in res.stdout, res.stdout
    # 120 windows of 5/min → 119 waits of 60 s + 600 × 0.3 s latency = 2h02m
    assert "about 2h02m at 5/60s" in res.stdout, res.stdout
    assert poly.seen == []  # not one request
    print(f"plan-only: {took:.1f}s")


def _wait_chunks(env, n: int, proc, timeout: float) -> int:
    stores = stores_for(env)
    try:

        def done() -> int:
            try:
                with stores.hot._tx() as conn:
                    return int(
                        conn.exec_driver_sql("select count(*) from backfill_chunks").scalar()
                    )
            except Exception:
                return 0

        wait_for(lambda: done() >= n or proc.poll() is not None, timeout, step=0.02)
        return done()
    finally:
        stores.close()


def test_backfill_kill_resume_exact_requests_then_no_gaps(
    base_env, poly, market, pg_url, s3_bucket, moto_server, tmp_path
):
    cold_url, _ = s3_bucket
    env = dict(
        base_env,
        MARKETPIPE_HOT_URL=pg_url,
        MARKETPIPE_COLD_URL=cold_url,
        MARKETPIPE_S3_ENDPOINT_URL=moto_server,
        MARKETPIPE_POLYGON_RATE_LIMIT="10/1s",  # 60 requests ≥ 6 s: time to kill mid-run
    )
    end = market.last
    start = (pd.Timestamp(end) - pd.DateOffset(years=2) + pd.Timedelta(days=1)).date()
    args = [
        "backfill",
        "--source",
        "polygon",
        "--symbols",
        ",".join(SYMBOLS),
        "--start",
        str(start),
        "--end",
        str(end),
        "--interval",
        "1d",
    ]

    # 1. start, then SIGKILL once at least 3 chunks are recorded done
    t0 = time.monotonic()
    proc = mp_popen(env, *args, log=tmp_path / "first.log")
    done_at_kill = _wait_chunks(env, 3, proc, timeout=120)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    first_s = time.monotonic() - t0
    first_out = (tmp_path / "first.log").read_text()
    assert proc.returncode == -signal.SIGKILL, first_out
    m = PLAN_RE.search(first_out)
    assert m, first_out
    chunks, already, printed = map(int, m.groups())
    assert (chunks, already, printed) == (20, 0, 60)  # 20 symbols × 1 window × 3 requests
    assert "at 10/1s" in first_out  # the estimate is for the configured limit
    first_requests = len(poly.seen)
    assert 3 <= done_at_kill < 20, "killed too late to prove a resume"
    assert first_requests <= printed

    stores = stores_for(env)
    try:
        finished = _ledger(stores)
    finally:
        stores.close()
    finished_syms = {cid.split(".")[0] for cid in finished}
    assert len(finished_syms) >= 3

    # 2. resume: only unfinished chunks, exactly the requests it prints
    t1 = time.monotonic()
    res = mp(env, *args)
    resume_s = time.monotonic() - t1
    assert res.returncode == 0, res.stdout + res.stderr
    m = PLAN_RE.search(res.stdout)
    chunks2, already2, printed2 = map(int, m.groups())
    assert chunks2 == 20 and already2 == len(finished)
    assert printed2 == 3 * (20 - already2)
    second_requests = len(poly.seen) - first_requests
    assert second_requests == printed2, (second_requests, printed2)
    assert f"({already2} skipped as finished)" in res.stdout

    # finished chunks were never requested again: each of their aggregates URLs once in total
    per_url = Counter(a.path for a in agg_requests(poly))
    for a in agg_requests(poly):
        if a.symbol in finished_syms:
            assert per_url[a.path] == 1, a.path
    assert all(a.start == str(start) and a.end == str(end) for a in agg_requests(poly))

    # 3. exactly one row per XNYS session per symbol across hot ∪ cold, no duplicates
    expected = sessions(start, end)
    stores = stores_for(env)
    try:
        hot, cold = all_rows(stores, SYMBOLS, start, end)
        both = pd.concat([hot, cold], ignore_index=True)
        assert not both.duplicated(["symbol", "interval", "ts"]).any()
        assert len(hot) > 0 and len(cold) > 0  # recent rows hot, old rows cold
        assert hot["ts"].min() > cold["ts"].max()
        for sym in SYMBOLS:
            got = pd.DatetimeIndex(both.loc[both["symbol"] == sym, "ts"]).tz_convert(None)
            assert list(got.sort_values()) == list(expected), sym
        assert len(both) == 20 * len(expected)
        # job_runs: the killed run stays "running" (SIGKILL), the resume succeeded with progress
        jobs = stores.hot.recent_jobs(5)
        last = jobs[0]
        assert last["job"] == "historical" and last["status"] == "success", last
        assert (last["chunks_done"], last["chunks_total"]) == (20, 20)
        assert last["rows_so_far"] == 20 * len(expected) - sum(
            int(r) for r in _ledger_rows(stores, finished)
        )
        assert last["error"] is None
        killed = jobs[1]
        assert killed["status"] == "running" and killed["chunks_total"] == 20
        assert killed["chunks_done"] >= 1  # progress was recorded before the kill
        actions = stores.hot.read_corporate_actions(["AAPL", "MSFT", "S03"])
        assert len(actions) == 4 + 1  # in-range dividends (AAPL 2, MSFT 2) + the S03 split
    finally:
        stores.close()

    from tests.history.test_issue3_sources import _artifact_keys

    assert {"backfill-progress", "backfill-completeness"} <= _artifact_keys()

    # 4. nothing missing
    gaps = mp(
        env,
        "gaps",
        "--symbols",
        ",".join(SYMBOLS),
        "--start",
        str(start),
        "--end",
        str(end),
        "--interval",
        "1d",
    )
    assert gaps.returncode == 0, gaps.stdout + gaps.stderr
    assert "0 missing" in gaps.stdout
    print(
        f"\nbackfill 20×2y: first run {first_s:.1f}s killed after {done_at_kill} chunks "
        f"({first_requests} requests), resume {resume_s:.1f}s: printed {printed2}, "
        f"made {second_requests}; total requests {len(poly.seen)} vs first estimate {printed}"
    )


def _ledger(stores) -> set[str]:
    with stores.hot._tx() as conn:
        return {r[0] for r in conn.exec_driver_sql("select chunk_id from backfill_chunks")}


def _ledger_rows(stores, chunk_ids) -> list[int]:
    with stores.hot._tx() as conn:
        rows = conn.exec_driver_sql("select chunk_id, rows from backfill_chunks").all()
    return [r for c, r in rows if c in chunk_ids]
