"""The realtime flow under a real Prefect server, into PostgreSQL: one task per flush, counts add up."""

import pandas as pd

from marketpipe.settings import load_settings
from marketpipe.storage import open_stores


def test_hybrid_session_into_postgres(prefect_server, pg_url, tmp_path, monkeypatch):
    from flows.realtime import realtime_session

    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", pg_url)
    report = realtime_session(
        mode="hybrid",
        source="synthetic",
        symbols=["AAA", "BBB"],
        duration_s=120,  # a bound only: the session ends when the 1600 ticks are in
        tick_limit=1600,
        ticks_per_sec=400,
        bar_window_s=1,
        flush_ms=300,
    )
    assert report["ended_by"] == "source_exhausted"
    assert report["ticks_received"] == 1600  # a count, not what the machine managed in 4 s
    assert report["drops"] == 0 and report["late_ticks"] == 0
    assert report["reconcile_differences"] == 0
    assert 1 <= report["flushes"] <= 1600 // 10  # micro-batches, never one per tick
    stores = open_stores(load_settings())
    try:
        bars = stores.hot.read_bars(["AAA", "BBB"], "1s")
        jobs = [j for j in stores.hot.recent_jobs(5) if j["job"] == "realtime"]
    finally:
        stores.close()
    assert 0 < len(bars) <= report["bars_written"]  # open bars are re-written on each flush
    assert int(bars["trades"].sum()) == report["ticks_received"]  # every tick is in a stored bar
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert bars["ts"].dt.tz is not None and (bars["ts"] < pd.Timestamp.now(tz="UTC")).all()
    assert jobs and jobs[0]["status"] == "success"
