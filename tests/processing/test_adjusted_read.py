"""One adjusted read: `read --adjusted` and the processing stage give the same numbers per bar."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from marketpipe.bars import conform_bars
from marketpipe.processing.adjusted_read import read_bars
from marketpipe.processing.stage import process_symbols
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores


def test_stage_and_read_adjust_the_same_bar_the_same_way(tmp_path, sqlite_url):
    """A dividend after the processed window still adjusts it, in both paths alike."""
    days = pd.bdate_range("2024-06-03", "2024-06-14", tz="UTC")  # no holidays in this range
    close = [100.0 + i for i in range(len(days))]
    raw = conform_bars(
        pd.DataFrame(
            {
                "symbol": "AAPL",
                "interval": "1d",
                "ts": days,
                "open": close,
                "high": [c + 1 for c in close],
                "low": [c - 1 for c in close],
                "close": close,
                "volume": 1000.0,
                "vwap": close,
                "source": "test",
            }
        )
    )
    actions = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL"],
            "ex_date": [date(2024, 6, 5), date(2024, 6, 13)],
            "kind": ["split", "dividend"],
            "value": [2.0, 1.1],
            "source": "test",
        }
    )
    settings = load_settings(data_dir=tmp_path, hot_url=sqlite_url, cold_url=str(tmp_path / "lake"))
    stores = open_stores(settings)
    try:
        stores.hot.upsert_bars(raw)
        stores.hot.upsert_corporate_actions(actions)
        now = pd.Timestamp("2024-06-20", tz="UTC")
        process_symbols(stores, ["AAPL"], date(2024, 6, 3), date(2024, 6, 7), "1d", now, 3650)
        features = stores.hot.read_features(["AAPL"], "1d")
        adjusted = read_bars(stores, ["AAPL"], "2024-06-03", "2024-06-08", "1d", adjusted=True)
    finally:
        stores.close()
    # independent reference: the dividend factor from the raw close before 2024-06-13 (107.0)
    div = 1 - 1.1 / 107.0
    want = [
        c * div / (2.0 if d < pd.Timestamp("2024-06-05", tz="UTC") else 1.0)
        for c, d in zip(close[:5], days[:5], strict=True)
    ]
    assert adjusted["vwap"].tolist() == pytest.approx(want)
    assert features.sort_values("ts")["vwap"].tolist() == pytest.approx(want)
