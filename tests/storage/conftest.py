"""Storage fixtures: a hot store on each engine (SQLite file, real PostgreSQL) and one lake per
backend (local folder, S3 on moto)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketpipe.bars import conform_bars
from marketpipe.storage.hot import SqlHotStore


@pytest.fixture(params=["sqlite", "postgresql"])
def hot_url(request) -> str:
    """A fresh hot-store URL: an SQLite file, or a new real PostgreSQL database."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
def hot_store(hot_url):
    store = SqlHotStore(hot_url)
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture(params=["local", "s3"])
def lake_target(request, tmp_path) -> tuple[str, dict]:
    """(cold_url, storage_options) for a fresh, empty lake on each backend."""
    if request.param == "local":
        return str(tmp_path / "lake"), {}
    return request.getfixturevalue("s3_bucket")


def make_bars(
    symbol: str = "AAPL",
    n: int = 10,
    start: str = "2024-03-01 14:30",
    interval: str = "1m",
    price: float = 100.0,
    freq: str = "1min",
) -> pd.DataFrame:
    """A clean canonical bars frame with distinct values per row."""
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    c = price + np.arange(n, dtype="float64") / 100
    trades = pd.array(np.arange(n) % 7 + 1, dtype="Int64")
    if n:
        trades[0] = pd.NA
    vwap = c.copy()
    if n > 1:
        vwap[1] = np.nan
    frame = pd.DataFrame(
        {
            "symbol": symbol,
            "interval": interval,
            "ts": ts,
            "open": c,
            "high": c + 0.5,
            "low": c - 0.5,
            "close": c + 0.1,
            "volume": np.arange(n, dtype="float64") * 10 + 100,
            "vwap": vwap,
            "trades": trades,
            "source": "synthetic",
        }
    )
    return conform_bars(frame)  # canonical: the derived `session` column included


@pytest.fixture
def bars():
    """The `make_bars` factory (fixture, so tests need no import path for this folder)."""
    return make_bars
