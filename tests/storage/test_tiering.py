"""Tiering hot → cold interrupted at every step, then re-run: every row exactly once, right tier."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest

from marketpipe.storage import Stores
from marketpipe.storage.delta_lake import DeltaLake
from marketpipe.storage.hot import SqlHotStore
from marketpipe.storage.read import read_bars
from marketpipe.storage.tiering import tier_hot_to_cold
from tests.storage.frames import make_bars

NOW = pd.Timestamp("2024-03-15 12:00", tz="UTC")
HOT_DAYS = 30
CUTOFF = NOW - pd.Timedelta(days=HOT_DAYS)


class Crash(Exception):
    pass


@pytest.fixture(params=["sqlite+local", "postgresql+s3"])
def stores(request, tmp_path):
    if request.param == "sqlite+local":
        hot = SqlHotStore(request.getfixturevalue("sqlite_url"))
        cold = DeltaLake(str(tmp_path / "lake"))
    else:
        hot = SqlHotStore(request.getfixturevalue("pg_url"))
        url, opts = request.getfixturevalue("s3_bucket")
        cold = DeltaLake(url, opts)
    s = Stores(hot=hot, cold=cold)
    yield s
    s.close()


def _seed(stores: Stores) -> pd.DataFrame:
    """Hourly bars for two symbols from Dec 2023 (spans a year boundary) to Mar 2024."""
    bars = make_bars(
        symbols=("AAPL", "MSFT"), start="2023-12-20 15:00", periods=24 * 80, interval="1h"
    )
    stores.hot.upsert_bars(bars)
    return bars


def _assert_exactly_once(stores: Stores, bars: pd.DataFrame) -> None:
    got = read_bars(stores, ["AAPL", "MSFT"], None, None, "1h")
    assert len(got) == len(bars)
    assert not got.duplicated(["symbol", "interval", "ts"]).any()
    expected = bars.sort_values(["symbol", "ts"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)


def _assert_right_tier(stores: Stores, bars: pd.DataFrame) -> None:
    hot = stores.hot.read_bars(["AAPL", "MSFT"], "1h")
    cold = stores.cold.read_bars(["AAPL", "MSFT"], "1h")
    assert (hot["ts"] >= CUTOFF).all()
    assert (cold["ts"] < CUTOFF).all()
    assert len(hot) + len(cold) == len(bars)
    assert len(cold) == int((bars["ts"] < CUTOFF).sum())


def test_tiering_moves_old_rows_and_is_idempotent(stores):
    bars = _seed(stores)
    report = tier_hot_to_cold(stores, NOW, HOT_DAYS)
    assert report.rows_moved == int((bars["ts"] < CUTOFF).sum())
    assert {(p["symbol"], p["year"]) for p in report.partitions} == {
        ("AAPL", 2023),
        ("AAPL", 2024),
        ("MSFT", 2023),
        ("MSFT", 2024),
    }
    _assert_right_tier(stores, bars)
    _assert_exactly_once(stores, bars)
    again = tier_hot_to_cold(stores, NOW, HOT_DAYS)
    assert again.rows_moved == 0
    _assert_right_tier(stores, bars)


@pytest.mark.parametrize("step", ["after_cold_write", "after_verify", "after_hot_delete"])
@pytest.mark.parametrize("nth", [1, 3])
def test_crash_after_each_step_then_rerun(stores, step, nth):
    bars = _seed(stores)
    seen = {"n": 0}

    def hook(name, info):
        if name == step:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Crash(f"injected at {name} {info}")

    with pytest.raises(Crash):
        tier_hot_to_cold(stores, NOW, HOT_DAYS, on_step=hook)
    _assert_exactly_once(stores, bars)  # mid-crash: every row visible once
    tier_hot_to_cold(stores, NOW, HOT_DAYS)
    _assert_exactly_once(stores, bars)
    _assert_right_tier(stores, bars)


def test_crash_during_hot_delete_rolls_back(stores, monkeypatch):
    bars = _seed(stores)
    real_tx = stores.hot._tx

    @contextlib.contextmanager
    def failing_tx():
        with real_tx() as conn:
            yield conn
            raise Crash("connection lost before commit")

    real_delete = stores.hot.delete_bars

    def delete_then_crash(*args, **kwargs):
        monkeypatch.setattr(stores.hot, "_tx", failing_tx)
        try:
            return real_delete(*args, **kwargs)
        finally:
            monkeypatch.setattr(stores.hot, "_tx", real_tx)

    monkeypatch.setattr(stores.hot, "delete_bars", delete_then_crash)
    with pytest.raises(Crash):
        tier_hot_to_cold(stores, NOW, HOT_DAYS)
    assert stores.hot.count_bars() == len(bars)  # the delete rolled back entirely
    _assert_exactly_once(stores, bars)
    monkeypatch.setattr(stores.hot, "delete_bars", real_delete)
    tier_hot_to_cold(stores, NOW, HOT_DAYS)
    _assert_exactly_once(stores, bars)
    _assert_right_tier(stores, bars)


def test_row_rewritten_after_read_is_not_deleted(stores):
    bars = _seed(stores)
    revised = bars.loc[(bars["symbol"] == "AAPL") & (bars["ts"] < CUTOFF)].head(1).copy()
    revised["close"] = revised["close"] + 0.25
    revised["high"] = revised[["high", "close"]].max(axis=1)

    def hook(name, info):
        if name == "after_verify" and info["symbol"] == "AAPL" and info["year"] == 2023:
            stores.hot.upsert_bars(revised)  # a restatement lands mid-tiering

    tier_hot_to_cold(stores, NOW, HOT_DAYS, on_step=hook)
    got = read_bars(stores, ["AAPL"], None, None, "1h")
    row = got.loc[got["ts"] == revised["ts"].iloc[0]]
    assert len(row) == 1 and row["close"].iloc[0] == revised["close"].iloc[0]
    tier_hot_to_cold(stores, NOW, HOT_DAYS)
    cold = stores.cold.read_bars(["AAPL"], "1h")
    assert (
        cold.loc[cold["ts"] == revised["ts"].iloc[0], "close"].iloc[0] == revised["close"].iloc[0]
    )
    assert stores.hot.count_bars(symbols=["AAPL"], interval="1h") == int(
        ((bars["symbol"] == "AAPL") & (bars["ts"] >= CUTOFF)).sum()
    )
