"""Issue 16.2 end to end: a vendor's split_to of 0 and -2 (and a negative dividend, a split on a
Saturday) are quarantined by the corporate-actions contract; `read --adjusted` stays finite and
positive, and the valid split is still applied."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from tests.reliability.conftest import agg, poly_path

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"]


def split(day: str, split_to: float, split_from: float = 1) -> dict:
    return {"execution_date": day, "split_from": split_from, "split_to": split_to, "ticker": "AAPL"}


def test_bad_split_ratios_are_quarantined_and_adjusted_reads_stay_finite(cli, poly):
    poly.add_json("/v3/reference/tickers/AAPL", {"status": "OK", "results": {"ticker": "AAPL"}})
    poly.add_json(
        poly_path("AAPL", DAYS[0], DAYS[-1]),
        {"ticker": "AAPL", "status": "OK", "results": [agg(d) for d in DAYS], "resultsCount": 6},
    )
    splits = [
        split("2024-01-03", 0),
        split("2024-01-04", -2),
        split("2024-01-06", 3),
    ]  # a Saturday (3:1, not a duplicate of the 2:1)
    splits.append(split("2024-01-08", 2))  # the one valid 2-for-1
    poly.add_json("/v3/reference/splits", {"status": "OK", "results": splits})
    poly.add_json(
        "/v3/reference/dividends",
        {"status": "OK", "results": [{"ex_dividend_date": "2024-01-05", "cash_amount": -1.0}]},
    )
    args = ("--symbols", "AAPL", "--interval", "1d", "--start", DAYS[0], "--end", DAYS[-1])
    res = cli("run", "--source", "polygon", *args)
    assert res.code == 0, res.err[-2000:]

    stores = open_stores(load_settings())
    try:
        actions = stores.hot.read_corporate_actions(["AAPL"])
        q = stores.hot.read_quarantine(symbols=["AAPL"])
    finally:
        stores.close()
    assert actions[["kind", "value"]].values.tolist() == [["split", 2.0]]
    assert sorted(zip(q["interval"], q["reason"], strict=True)) == [
        ("action:dividend", "dividend_invalid"),
        ("action:split", "not_a_session"),
        ("action:split", "split_ratio_invalid"),
        ("action:split", "split_ratio_invalid"),
    ]

    res = cli(
        "read", "AAPL", "--start", DAYS[0], "--end", DAYS[-1], "--interval", "1d", "--adjusted"
    )
    assert res.code == 0, res.err
    adjusted = pd.read_csv(io.StringIO(res.out))
    assert len(adjusted) == len(DAYS)
    for col in ("open", "high", "low", "close", "volume"):
        assert np.isfinite(adjusted[col]).all() and (adjusted[col] > 0).all(), col
    # bars before the 2024-01-08 ex-date are halved, later ones raw
    assert adjusted["close"].tolist() == [50.25] * 4 + [100.5] * 2
