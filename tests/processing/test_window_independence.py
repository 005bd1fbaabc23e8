"""Stored features do not depend on the processing window (issue 15): real hot store + lake.

Any window's stored features equal those of one run over all history (to 1e-9), re-running a
window never nulls or moves a stored value, an incremental run after new bars arrive equals the
full run, and the full-history values are TA-Lib's own.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import talib

from marketpipe.bars import conform_bars
from marketpipe.calendar import expected_bar_starts
from marketpipe.processing.stage import process_symbols
from marketpipe.storage import Stores
from marketpipe.storage.delta_lake import DeltaLake
from marketpipe.storage.hot import SqlHotStore
from marketpipe.storage.read import read_bars

FEATURES = ["ret", "sma_20", "sma_50", "ema_12", "ema_26", "rsi_14", "bb_upper", "rv_20"]
SYMBOLS = ["AAA", "BBB"]
NOW = pd.Timestamp("2024-12-31 23:00", tz="UTC")
HOT_DAYS = 200  # bars from mid-2024 on are hot, older ones cold: both tiers are read


def walk(interval: str, first: str, last: str) -> pd.DataFrame:
    ts = expected_bar_starts(interval, first, last)
    rng = np.random.default_rng(5)
    frames = []
    for k, sym in enumerate(SYMBOLS):
        close = (50.0, 300.0)[k] * np.exp(np.cumsum(rng.normal(0, 0.01, len(ts))))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "interval": interval,
                    "ts": ts,
                    "open": close,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": 1000.0,
                    "source": "synthetic",
                }
            )
        )
    return conform_bars(pd.concat(frames, ignore_index=True))


def open_test_stores(url: str, lake: str) -> Stores:
    return Stores(hot=SqlHotStore(url), cold=DeltaLake(lake))


def store(stores: Stores, bars: pd.DataFrame) -> None:
    cutoff = NOW - pd.Timedelta(days=HOT_DAYS)
    cold, hot = bars[bars["ts"] < cutoff], bars[bars["ts"] >= cutoff]
    if len(cold):
        stores.cold.write_bars(cold)
    if len(hot):
        stores.hot.upsert_bars(hot)


def run(stores: Stores, start, end, interval: str) -> None:
    process_symbols(stores, SYMBOLS, pd.Timestamp(start).date(), pd.Timestamp(end).date(),
                    interval, NOW, HOT_DAYS)  # fmt: skip


def stored_features(stores: Stores, interval: str) -> pd.DataFrame:
    hot = stores.hot.read_features(SYMBOLS, interval)
    cold = stores.cold.read_features(SYMBOLS, interval)
    both = pd.concat([f for f in (cold, hot) if len(f)], ignore_index=True)
    return both.sort_values(["symbol", "ts"]).set_index(["symbol", "ts"])[FEATURES]


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    want = want.loc[got.index]
    assert np.array_equal(got.isna().to_numpy(), want.isna().to_numpy()), "NaN pattern differs"
    np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=1e-9, atol=1e-12)


CASES = {
    "1d": ("2022-01-03", "2024-12-31", [("2024-10-01", "2024-12-31"), ("2023-02-01", "2023-03-15")]),
    "1m": ("2024-12-02", "2024-12-06", [("2024-12-05", "2024-12-05"), ("2024-12-03", "2024-12-04")]),
}  # fmt: skip


@pytest.mark.parametrize("interval", ["1d", "1m"])
def test_any_window_equals_full_history(tmp_path, interval):
    first, last, windows = CASES[interval]
    bars = walk(interval, first, last)
    full = open_test_stores(f"sqlite:///{tmp_path}/full.db", str(tmp_path / "lake_full"))
    part = open_test_stores(f"sqlite:///{tmp_path}/part.db", str(tmp_path / "lake_part"))
    try:
        for s in (full, part):
            store(s, bars)
        run(full, first, last, interval)
        want = stored_features(full, interval)
        # the full run is TA-Lib's definition over the whole series
        for sym in SYMBOLS:
            c = bars.loc[bars["symbol"] == sym, "close"].to_numpy()
            np.testing.assert_allclose(want.loc[sym, "ema_26"], talib.EMA(c, 26), rtol=1e-12)
            np.testing.assert_allclose(want.loc[sym, "rsi_14"], talib.RSI(c, 14), rtol=1e-11)
        for lo, hi in windows:
            run(part, lo, hi, interval)
            got = stored_features(part, interval)
            window = got.loc[got.index.get_level_values("ts") >= pd.Timestamp(lo, tz="UTC")]
            assert len(window) and window.notna().all().all()
            assert_same(got, want)
        # re-running the first window after the second changes nothing stored
        before = stored_features(part, interval)
        run(part, *windows[0], interval)
        pd.testing.assert_frame_equal(stored_features(part, interval), before, rtol=0, atol=0)
    finally:
        full.close()
        part.close()


def test_incremental_run_after_new_bars_equals_one_full_run(pg_url, tmp_path):
    """Nightly 90-day windows as bars arrive (PostgreSQL hot store) = one run over everything."""
    bars = walk("1d", "2023-01-03", "2024-12-31")
    full = open_test_stores(f"sqlite:///{tmp_path}/full.db", str(tmp_path / "lake_full"))
    inc = open_test_stores(pg_url, str(tmp_path / "lake_inc"))
    try:
        store(full, bars)
        run(full, "2023-01-03", "2024-12-31", "1d")
        want = stored_features(full, "1d")
        day = pd.Timestamp("2024-06-28", tz="UTC")
        store(inc, bars[bars["ts"] <= day])
        run(inc, "2023-01-03", day, "1d")
        while day < pd.Timestamp("2024-12-31", tz="UTC"):
            nxt = day + timedelta(days=30)
            store(inc, bars[(bars["ts"] > day) & (bars["ts"] <= nxt)])
            run(inc, nxt - timedelta(days=90), nxt, "1d")
            day = nxt
        got = stored_features(inc, "1d")
        assert len(got) == len(want)
        assert_same(got, want)
        raw = read_bars(inc, SYMBOLS, "2023-01-03", "2025-01-01", "1d")
        assert len(raw) == len(bars)
    finally:
        full.close()
        inc.close()
