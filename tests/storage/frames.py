"""Canonical bar frames for storage tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketpipe.bars import conform_bars


def make_bars(
    symbols=("AAPL",),
    start="2024-01-02 14:30",
    periods: int = 5,
    interval: str = "1m",
    price: float = 100.0,
    source: str = "synthetic",
) -> pd.DataFrame:
    """Canonical 1-minute-ish bars: one row per symbol per period, prices from `price` up."""
    step = {"1m": "1min", "5m": "5min", "15m": "15min", "1h": "1h", "1d": "1D"}[interval]
    ts = pd.date_range(start, periods=periods, freq=step, tz="UTC")
    frames = []
    for i, sym in enumerate(symbols):
        base = price + i * 10 + np.arange(periods, dtype="float64")
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "interval": interval,
                    "ts": ts,
                    "open": base,
                    "high": base + 1.0,
                    "low": base - 1.0,
                    "close": base + 0.5,
                    "volume": 1000.0 + np.arange(periods),
                    "vwap": base + 0.25,
                    "trades": np.arange(periods, dtype="int64") + 1,
                    "source": source,
                }
            )
        )
    return conform_bars(pd.concat(frames, ignore_index=True))
