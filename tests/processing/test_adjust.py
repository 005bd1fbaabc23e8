"""Back-adjustment against hand-computed literals (4:1 split, $0.82 dividend, both compounded)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from marketpipe.bars import conform_bars
from marketpipe.processing.adjust import adjust_bars, adjustment_factors


def daily(closes: dict[str, float], symbol: str = "AAPL", volume: float = 1000.0) -> pd.DataFrame:
    c = np.array(list(closes.values()))
    return conform_bars(
        pd.DataFrame(
            {
                "symbol": symbol,
                "interval": "1d",
                "ts": pd.to_datetime(list(closes), utc=True),
                "open": c - 1.0,
                "high": c + 2.0,
                "low": c - 2.0,
                "close": c,
                "volume": volume,
                "vwap": c + 0.5,
                "trades": 7,
                "source": "polygon",
            }
        )
    )


def actions(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(s, dt.date.fromisoformat(d), k, v, "polygon") for s, d, k, v in rows],
        columns=["symbol", "ex_date", "kind", "value", "source"],
    )


SPLIT = ("AAPL", "2024-08-29", "split", 4.0)
DIVIDEND = ("AAPL", "2024-09-04", "dividend", 0.82)


def test_four_for_one_split():
    bars = daily(
        {"2024-08-27": 400.0, "2024-08-28": 404.0, "2024-08-29": 101.5, "2024-08-30": 102.0}
    )
    out = adjust_bars(bars, actions(SPLIT))
    assert out["close"].tolist() == [100.0, 101.0, 101.5, 102.0]
    assert out["open"].tolist() == [99.75, 100.75, 100.5, 101.0]
    assert out["high"].tolist() == [100.5, 101.5, 103.5, 104.0]
    assert out["vwap"].tolist() == [100.125, 101.125, 102.0, 102.5]
    assert out["volume"].tolist() == [4000.0, 4000.0, 1000.0, 1000.0]
    assert out["trades"].tolist() == [7, 7, 7, 7]
    assert bars["close"].tolist() == [400.0, 404.0, 101.5, 102.0]  # raw input untouched


def test_cash_dividend_factor():
    bars = daily({"2024-08-30": 102.0, "2024-09-03": 100.0, "2024-09-04": 99.5})
    f = adjustment_factors(bars, actions(DIVIDEND))
    assert len(f) == 1
    assert f.loc[0, "close_prev"] == 100.0
    assert f.loc[0, "price_factor"] == pytest.approx(0.9918, abs=1e-15)
    assert f.loc[0, "volume_factor"] == 1.0
    out = adjust_bars(bars, actions(DIVIDEND))
    np.testing.assert_allclose(out["close"], [101.1636, 99.18, 99.5], rtol=0, atol=1e-12)
    assert out["volume"].tolist() == [1000.0, 1000.0, 1000.0]


def test_split_and_dividend_compound_back_in_time():
    bars = daily(
        {
            "2024-08-27": 400.0,
            "2024-08-28": 404.0,
            "2024-08-29": 101.5,
            "2024-08-30": 102.0,
            "2024-09-03": 100.0,
            "2024-09-04": 99.5,
        }
    )
    shuffled = bars.iloc[[3, 0, 5, 1, 4, 2]]
    out = adjust_bars(shuffled, actions(DIVIDEND, SPLIT)).sort_values("ts")
    expected = [99.18, 100.1718, 100.6677, 101.1636, 99.18, 99.5]
    np.testing.assert_allclose(out["close"], expected, rtol=0, atol=1e-12)
    assert out["volume"].tolist() == [4000.0, 4000.0, 1000.0, 1000.0, 1000.0, 1000.0]


def test_intraday_uses_last_close_before_ex_date():
    ts = pd.to_datetime(
        ["2024-09-03 19:58", "2024-09-03 19:59", "2024-09-04 13:30", "2024-09-04 13:31"], utc=True
    )
    c = np.array([100.4, 100.0, 99.2, 99.3])
    bars = conform_bars(
        pd.DataFrame(
            {
                "symbol": "AAPL",
                "interval": "1m",
                "ts": ts,
                "open": c,
                "high": c,
                "low": c,
                "close": c,
                "volume": 10.0,
                "source": "polygon",
            }
        )
    )
    f = adjustment_factors(bars, actions(DIVIDEND))
    assert f.loc[0, "close_prev"] == 100.0
    out = adjust_bars(bars, actions(DIVIDEND, ("MSFT", "2024-09-04", "split", 2.0)))
    np.testing.assert_allclose(out["close"], [100.4 * 0.9918, 99.18, 99.2, 99.3], atol=1e-12)
    assert out["vwap"].isna().all()  # missing vwap stays missing


def test_reverse_split_and_other_symbols_untouched():
    a = daily({"2024-05-01": 2.0, "2024-05-02": 20.5}, symbol="TINY", volume=10_000.0)
    b = daily({"2024-05-01": 50.0, "2024-05-02": 51.0}, symbol="OTHER")
    out = adjust_bars(
        pd.concat([a, b], ignore_index=True), actions(("TINY", "2024-05-02", "split", 0.1))
    )
    assert out["close"].tolist() == [20.0, 20.5, 50.0, 51.0]
    assert out["volume"].tolist() == [1000.0, 10_000.0, 1000.0, 1000.0]


def test_no_actions_is_identity():
    bars = daily({"2024-05-01": 2.0, "2024-05-02": 3.0})
    pd.testing.assert_frame_equal(adjust_bars(bars, actions()), bars)
    with pytest.raises(ValueError):
        adjust_bars(bars, actions(("AAPL", "2024-05-02", "merger", 1.0)))


def test_repeated_action_row_applies_once():
    bars = daily({"2024-08-28": 404.0, "2024-08-29": 101.5})
    out = adjust_bars(bars, actions(SPLIT, SPLIT))
    assert out["close"].tolist() == [101.0, 101.5]


@pytest.mark.parametrize(
    "ex_date", ["2024-08-29", pd.Timestamp("2024-08-29"), dt.date(2024, 8, 29)]
)
def test_ex_date_types(ex_date):
    bars = daily({"2024-08-28": 404.0, "2024-08-29": 101.5})
    ca = pd.DataFrame(
        {"symbol": ["AAPL"], "ex_date": [ex_date], "kind": ["split"], "value": [4.0], "source": "x"}
    )
    assert adjust_bars(bars, ca)["close"].tolist() == [101.0, 101.5]


def test_dividend_without_the_previous_session_adjusts_nothing():
    """Only January stored, dividend in November: no close of 2024-11-07 to measure it against."""
    bars = daily({"2024-01-02": 400.0, "2024-01-03": 404.0})
    ev = adjustment_factors(bars, actions(("AAPL", "2024-11-08", "dividend", 0.25), SPLIT))
    assert np.isnan(ev.set_index("kind").loc["dividend", "price_factor"])
    out = adjust_bars(bars, actions(("AAPL", "2024-11-08", "dividend", 0.25), SPLIT))
    assert out["close"].tolist() == [100.0, 101.0]  # the split alone


def test_dividend_types_regular_and_special_adjust_others_are_stored_only():
    bars = daily({"2024-09-03": 100.0, "2024-09-04": 99.5})
    base = ("AAPL", "2024-09-04")
    regular_special = adjust_bars(
        bars, actions((*base, "dividend", 0.5), (*base, "special_dividend", 0.32))
    )
    assert regular_special["close"].iloc[0] == pytest.approx(100.0 * (1 - 0.82 / 100.0), abs=1e-12)
    capital_gain = adjust_bars(bars, actions((*base, "dividend_lt", 0.82)))
    assert capital_gain["close"].tolist() == [100.0, 99.5]
