"""Issue 16.5 end to end: `run --stages ingestion,processing` with one poisoned symbol (1e308
prices) succeeds; the poison is quarantined `out_of_range` and MSFT gets its features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketpipe.calendar import expected_bar_starts
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores


def replay_csv(path, sessions: pd.DatetimeIndex) -> None:
    rows = []
    for symbol, price in (("POISON", 1e308), ("MSFT", 400.0)):
        close = price * (1 - 0.001 * np.arange(len(sessions)))
        rows.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "interval": "1d",
                    "ts": sessions.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "open": close,
                    "high": close,
                    "low": close * 0.99,
                    "close": close,
                    "volume": 1e6,
                }
            )
        )
    pd.concat(rows).to_csv(path, index=False, float_format="%.17g")


def test_poisoned_symbol_is_quarantined_and_msft_gets_features(cli, tmp_path):
    sessions = expected_bar_starts("1d", "2024-01-02", "2024-03-28")
    path = tmp_path / "poison.csv"
    replay_csv(path, sessions)
    res = cli(
        *("run", "--stages", "ingestion,processing", "--source", "replay"),
        *("--replay-path", str(path), "--symbols", "POISON,MSFT", "--interval", "1d"),
        *("--start", "2024-01-02", "--end", "2024-03-28"),
    )
    assert res.code == 0, res.err[-2000:]
    stores = open_stores(load_settings())
    try:
        q = stores.hot.read_quarantine(symbols=["POISON"])
        features = stores.hot.read_features(["MSFT", "POISON"], "1d", None, None)
        cold = stores.cold.read_features(["MSFT", "POISON"], "1d")
    finally:
        stores.close()
    assert len(q) == len(sessions) and set(q["reason"]) == {"out_of_range"}
    both = pd.concat([features, cold], ignore_index=True)
    assert set(both["symbol"]) == {"MSFT"} and len(both) == len(sessions)
    assert np.isfinite(both["vwap"].dropna()).all()
