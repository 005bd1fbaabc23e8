"""Issue 16.5: one poisoned symbol must not break processing for the others.

Two layers: the contract's magnitude bound quarantines 1e308 prices at ingestion (`out_of_range`),
and processing isolates symbols, so data that got stored anyway (here written straight into the
hot store, as bars stored before the bound existed would be) fails only its own symbol.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from marketpipe.bars import conform_bars
from marketpipe.calendar import expected_bar_starts
from marketpipe.processing.stage import process_symbols
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores

START, END = pd.Timestamp("2024-01-02").date(), pd.Timestamp("2024-03-28").date()
NOW = pd.Timestamp("2024-04-01T00:00:00Z")


def daily_bars(symbol: str, price: float, seed: int) -> pd.DataFrame:
    ts = expected_bar_starts("1d", START, END)
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 0.01, len(ts))))
    close = np.minimum(close, price)  # poisoned prices stay finite (<= 1e308)
    return conform_bars(
        pd.DataFrame(
            {
                "symbol": symbol,
                "interval": "1d",
                "ts": ts,
                "open": close,
                "high": close,
                "low": close * 0.99,
                "close": close,
                "volume": 1e6,
                "vwap": np.nan,  # so VWAP is the typical price, (h + l + c) / 3: inf here
                "trades": 100,
                "source": "test",
            }
        )
    )


@pytest.fixture
def stores(tmp_path, monkeypatch, pg_url):
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", pg_url)
    s = open_stores(load_settings())
    yield s
    s.close()


def test_a_failing_symbol_is_quarantined_and_the_others_complete(stores):
    msft, poison = daily_bars("MSFT", 400.0, 1), daily_bars("POISON", 1e308, 2)
    stores.hot.upsert_bars(pd.concat([poison, msft], ignore_index=True))

    report = process_symbols(stores, ["POISON", "MSFT"], START, END, "1d", NOW, hot_days=10_000)

    assert list(report.failed) == ["POISON"]
    assert report.failed["POISON"].startswith("processing_failed: features contract failed (")
    assert "finite_where_defined" in report.failed["POISON"]
    assert report.bars_in == len(msft) and report.features_hot == len(msft)
    assert [q["symbol"] for q in report.quality] == ["MSFT"]
    features = stores.hot.read_features(["MSFT", "POISON"], "1d", None, None)
    assert set(features["symbol"]) == {"MSFT"} and len(features) == len(msft)
    assert np.isfinite(features["sma_20"].dropna()).all() and features["sma_20"].notna().any()
    q = stores.hot.read_quarantine(symbols=["POISON"])
    assert q["reason"].tolist() == ["processing_failed"]
    assert q["ts"].isna().all() and "finite_where_defined" in q.iloc[0]["detail"]
    assert json.loads(q.iloc[0]["payload"]) == {
        "stage": "processing",
        "start": "2024-01-02",
        "end": "2024-03-28",
    }
