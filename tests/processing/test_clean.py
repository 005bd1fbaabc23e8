"""Dedup with source priority and outlier flags: nothing but duplicates is ever dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketpipe.processing.clean import clean_bars


def test_polygon_wins_over_yahoo_and_duplicates_are_counted(make_walk):
    poly = make_walk(symbols=("AAPL",), n=30, source="polygon")
    yahoo = make_walk(symbols=("AAPL",), n=40, source="yahoo")  # same keys for the first 30
    yahoo["close"] = yahoo["close"] + 1.0
    yahoo["high"] = yahoo["high"] + 1.0
    bars = pd.concat([yahoo, poly], ignore_index=True)  # yahoo first: order must not matter
    res = clean_bars(bars)
    assert res.duplicates_removed == 30
    assert len(bars) == len(res.bars) + res.duplicates_removed
    assert res.bars["source"].tolist() == ["polygon"] * 30 + ["yahoo"] * 10
    assert np.array_equal(res.bars["close"].to_numpy()[:30], poly["close"].to_numpy())
    assert not res.bars.duplicated(["symbol", "interval", "ts"]).any()
    assert res.bars["ts"].is_monotonic_increasing


def test_unknown_source_ranks_last(make_walk):
    a = make_walk(symbols=("X",), n=5, source="mystery")
    b = make_walk(symbols=("X",), n=5, source="synthetic")
    res = clean_bars(pd.concat([a, b], ignore_index=True))
    assert set(res.bars["source"]) == {"synthetic"} and res.duplicates_removed == 5


def test_planted_outliers_are_flagged_not_dropped(make_walk):
    bars = make_walk(symbols=("AAPL", "MSFT"), n=400)
    aapl = bars.index[bars["symbol"] == "AAPL"]
    msft = bars.index[bars["symbol"] == "MSFT"]
    unit_i, spike_i, zero_i = aapl[200], aapl[300], msft[150]
    for col in ("open", "high", "low", "close", "vwap"):
        bars.loc[unit_i, col] *= 100.0  # Yahoo's 100x unit error
    bars.loc[spike_i, ["close", "high"]] = bars.loc[spike_i, "close"] * 1.08  # +8% in a minute
    px = bars.loc[zero_i, "close"]
    bars.loc[zero_i, ["open", "high", "low", "close"]] = px  # zero range, volume > 0
    dup = bars.loc[[aapl[10]]].assign(source="yahoo")  # one duplicate, lower priority
    dirty = pd.concat([bars, dup], ignore_index=True).sample(frac=1.0, random_state=5)

    res = clean_bars(dirty)
    assert res.duplicates_removed == 1
    assert len(res.bars) == len(dirty) - 1 == len(bars)  # rows in = rows out + duplicates

    def flags_at(i: int) -> str:
        key = (res.bars["symbol"] == bars.loc[i, "symbol"]) & (res.bars["ts"] == bars.loc[i, "ts"])
        (row,) = res.bars.index[key]
        return res.bars.loc[row, "outlier_flags"]

    assert flags_at(unit_i) == "unit_error_100x"
    assert "spike" in flags_at(spike_i).split(",")
    assert flags_at(zero_i) == "zero_range_volume"
    # the 100x bar and its neighbour are not double-reported as spikes
    assert flags_at(aapl[201]) == ""
    # the flagged rows keep their (bad) values: flagging never edits or drops
    assert (
        res.bars.loc[res.bars["outlier_flags"] == "unit_error_100x", "close"].iloc[0]
        == (bars.loc[unit_i, "close"])
    )
    marked = res.bars[res.bars["outlier_flags"] != ""]
    allowed = {spike_i, spike_i + 1, unit_i, zero_i}  # the reverting bar may count as a spike too
    planted_keys = {(bars.loc[i, "symbol"], bars.loc[i, "ts"]) for i in allowed}
    assert set(zip(marked["symbol"], marked["ts"], strict=True)) <= planted_keys
    assert set(res.flags.columns) == {"symbol", "interval", "ts", "reason", "detail"}
    reasons = res.flags.groupby("reason").size().to_dict()
    assert reasons["unit_error_100x"] == 1 and reasons["zero_range_volume"] == 1
    assert 1 <= reasons["spike"] <= 2
    assert len(res.flags) == sum(len(f.split(",")) for f in marked["outlier_flags"])
    zero_detail = res.flags.loc[res.flags["reason"] == "zero_range_volume", "detail"].iloc[0]
    assert "volume=" in zero_detail


def test_zero_range_without_volume_is_clean(make_walk):
    bars = make_walk(symbols=("X",), n=60)
    bars.loc[30, ["open", "high", "low", "close"]] = bars.loc[30, "close"]
    bars.loc[30, "volume"] = 0.0
    res = clean_bars(bars)
    assert res.bars.loc[30, "outlier_flags"] == ""


def test_clean_walk_has_no_flags(make_walk):
    res = clean_bars(make_walk(n=2000))
    assert res.flags.empty and (res.bars["outlier_flags"] == "").all()
    assert res.duplicates_removed == 0


def test_001x_unit_error(make_walk):
    bars = make_walk(symbols=("X",), n=80)
    bars.loc[40, ["open", "high", "low", "close", "vwap"]] /= 100.0
    res = clean_bars(bars)
    assert res.bars.loc[40, "outlier_flags"] == "unit_error_100x"
    assert (res.bars["outlier_flags"] != "").sum() == 1


def test_empty(make_walk):
    res = clean_bars(make_walk(n=0))
    assert res.bars.empty and res.flags.empty and res.duplicates_removed == 0
    assert "outlier_flags" in res.bars.columns


def test_intervals_are_separate_series_and_missing_source_ranks_last(make_walk):
    minute = make_walk(symbols=("X",), n=50)
    daily = make_walk(symbols=("X",), n=50, interval="1d", start="2024-01-02", seed=9)
    odd = minute.iloc[[3]].assign(source=pd.NA)
    res = clean_bars(pd.concat([odd, daily, minute], ignore_index=True))
    assert res.duplicates_removed == 1 and len(res.bars) == 100
    assert res.bars["interval"].tolist() == ["1d"] * 50 + ["1m"] * 50
    assert res.bars["source"].notna().all()
