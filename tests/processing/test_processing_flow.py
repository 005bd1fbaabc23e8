"""The processing stage on already-stored data (hot ∪ cold), through a real Prefect server."""

from datetime import date, timedelta

import pandas as pd
import pytest

from marketpipe.calendar import expected_bar_starts
from marketpipe.processing.adjusted_read import read_bars
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores


@pytest.fixture
def local_env(monkeypatch, tmp_path, pg_url):
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", pg_url)
    monkeypatch.setenv("MARKETPIPE_HOT_DAYS", "30")
    return load_settings()


def test_processing_after_ingestion_writes_features_and_quality(prefect_server, local_env):
    from flows.pipeline import pipeline

    end = pd.Timestamp.now(tz="UTC").date()
    start = end - timedelta(days=120)
    out = pipeline(stages=["ingestion", "processing"], symbols=["AAA", "BBB"], start=start, end=end)
    ing, proc = out["ingestion"], out["processing"]
    stored = ing["totals"]["hot"] + ing["totals"]["cold"]
    t = proc["totals"]
    assert t["bars_in"] == stored
    assert t["features_hot"] + t["features_cold"] == stored  # one feature row per bar
    assert t["features_cold"] > 0 and t["features_hot"] > 0  # routed to both tiers
    sessions = len(expected_bar_starts("1d", start, end, now=pd.Timestamp.now(tz="UTC")))
    assert t["quality_rows"] == 2 * sessions  # every (symbol, session)
    assert {q["symbol"] for q in proc["quality"]} == {"AAA", "BBB"}
    assert all(0.0 <= q["min_score"] <= q["mean_score"] <= 1.0 for q in proc["quality"])

    stores = open_stores(local_env)
    try:
        hot = stores.hot.read_features(["AAA"], "1d", None, None)
        cold = stores.cold.read_features(["AAA"], "1d")
        bars = read_bars(stores, ["AAA"], start, end + timedelta(days=1), "1d")
        quality = stores.hot.read_quality(["AAA"], "1d", None, None)
    finally:
        stores.close()
    both = pd.concat([cold[["ts", "sma_20", "ret"]], hot[["ts", "sma_20", "ret"]]])
    both = both.sort_values("ts").reset_index(drop=True)
    assert list(both["ts"]) == list(bars["ts"])
    expected_sma = bars["close"].rolling(20).mean()
    pd.testing.assert_series_equal(
        both["sma_20"], expected_sma.reset_index(drop=True), check_names=False, rtol=1e-9
    )
    assert len(quality) == sessions


def test_adjusted_read_matches_hand_computation(local_env):
    """4:1 split and a $0.82 dividend, CRSP-style, applied at read time; storage stays raw."""
    from marketpipe.bars import conform_bars

    ts = pd.to_datetime(["2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06"], utc=True)
    raw = conform_bars(
        pd.DataFrame(
            {
                "symbol": "AAPL",
                "interval": "1d",
                "ts": ts,
                "open": [400.0, 404.0, 100.0, 101.0],
                "high": [401.0, 405.0, 102.0, 103.0],
                "low": [399.0, 403.0, 99.0, 100.0],
                "close": [400.0, 404.0, 100.0, 101.0],
                "volume": [1000.0, 1000.0, 4000.0, 4000.0],
                "source": "test",
            }
        )
    )
    actions = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL"],
            "ex_date": [date(2024, 6, 5), date(2024, 6, 6)],
            "kind": ["split", "dividend"],
            "value": [4.0, 0.82],
            "source": ["test", "test"],
        }
    )
    stores = open_stores(local_env)
    try:
        stores.hot.upsert_bars(raw)
        stores.hot.upsert_corporate_actions(actions)
        adj = read_bars(stores, ["AAPL"], "2024-06-01", "2024-06-10", "1d", adjusted=True)
        raw_back = read_bars(stores, ["AAPL"], "2024-06-01", "2024-06-10", "1d")
    finally:
        stores.close()
    f = 1 - 0.82 / 100.0  # dividend factor from the close before the ex-date (0.9918)
    assert adj["close"].tolist() == pytest.approx([100 * f, 101 * f, 100 * f, 101.0])
    assert adj["volume"].tolist() == pytest.approx([4000.0, 4000.0, 4000.0, 4000.0])
    assert raw_back["close"].tolist() == [400.0, 404.0, 100.0, 101.0]  # storage stays raw
