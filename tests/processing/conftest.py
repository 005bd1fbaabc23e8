"""Real-shaped synthetic bars for the processing tests (seeded random walks on real sessions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketpipe.bars import conform_bars


def random_walk_bars(
    symbols=("AAPL", "MSFT", "SPY"),
    n: int = 600,
    interval: str = "1m",
    start: str = "2024-03-04 14:30",
    seed: int = 7,
    source: str = "synthetic",
) -> pd.DataFrame:
    """OHLCV random walks with realistic price levels; bars every minute (or day) from `start`."""
    rng = np.random.default_rng(seed)
    freq = "1min" if interval == "1m" else "1D"
    frames = []
    for k, sym in enumerate(symbols):
        base = (180.0, 410.0, 510.0, 25.0, 3.5)[k % 5]
        close = base * np.exp(np.cumsum(rng.normal(0.0, 0.0012, n)))
        open_ = np.r_[base, close[:-1]] * np.exp(rng.normal(0.0, 0.0003, n))
        spread = np.abs(rng.normal(0.0, 0.0008, n)) * close
        high = np.maximum(open_, close) + spread
        low = np.minimum(open_, close) - spread
        volume = rng.integers(100, 50_000, n).astype(float)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "interval": interval,
                    "ts": pd.date_range(start, periods=n, freq=freq, tz="UTC"),
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "vwap": (high + low + close) / 3.0 + rng.normal(0, 0.0001, n),
                    "trades": rng.integers(1, 500, n),
                    "source": source,
                }
            )
        )
    return conform_bars(pd.concat(frames, ignore_index=True))


@pytest.fixture
def walk() -> pd.DataFrame:
    return random_walk_bars()


@pytest.fixture
def make_walk():
    return random_walk_bars
