"""The symbol × session coverage frame and what derives from it (completeness, cell states)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pandas_market_calendars as pmc

from marketpipe.coverage import completeness_rows, coverage_states, window_coverage


def _minutes(day: str, n: int, offset: int = 0) -> pd.DatetimeIndex:
    opens = pmc.get_calendar("XNYS").schedule(day, day)["market_open"]
    return pd.date_range(opens.iloc[0] + pd.Timedelta(minutes=offset), periods=n, freq="1min")


def test_window_coverage_counts_expected_present_and_quarantined():
    # 2024-11-29 closes early (13:00 ET: 210 one-minute bars); 2024-11-28 is a holiday
    ts = _minutes("2024-11-27", 390).append(_minutes("2024-11-29", 100))
    bars = pd.DataFrame({"symbol": "AAPL", "ts": ts})
    bars = pd.concat([bars, bars.iloc[:5]])  # duplicates count once
    off_grid = pd.DataFrame({"symbol": ["AAPL"], "ts": [ts[0] + pd.Timedelta(seconds=30)]})
    quarantine = pd.DataFrame(
        {"symbol": ["MSFT", "MSFT"], "ts": list(_minutes("2024-11-29", 2)), "reason": "x"}
    )
    cov = window_coverage(
        pd.concat([bars, off_grid]),
        quarantine,
        ["AAPL", "MSFT"],
        "1m",
        date(2024, 11, 27),
        date(2024, 11, 29),
    )
    assert cov["session"].tolist() == [date(2024, 11, 27), date(2024, 11, 29)] * 2
    assert cov["expected"].tolist() == [390, 210, 390, 210]
    assert cov["present"].tolist() == [390, 100, 0, 0]
    assert cov["quarantined"].tolist() == [0, 0, 0, 2]
    states = coverage_states(cov)
    assert states.loc["AAPL"].tolist() == ["present", "partial"]
    assert states.loc["MSFT"].tolist() == ["missing", "quarantined"]

    rows = completeness_rows(
        cov,
        {"AAPL": ts[-1], "MSFT": None},
        {"MSFT": 2},
        "1m",
        last_closed=date(2024, 11, 29),
    )
    assert [(r["expected"], r["present"], r["missing"]) for r in rows] == [
        (600, 490, 110),
        (600, 0, 600),
    ]
    assert [r["fresh"] for r in rows] == [True, False] and rows[1]["quarantined"] == 2


def test_window_coverage_only_expects_bars_complete_by_now():
    now = pd.Timestamp("2024-11-27 10:00", tz="America/New_York")
    cov = window_coverage(
        pd.DataFrame({"symbol": [], "ts": []}),
        None,
        ["AAPL"],
        "5m",
        date(2024, 11, 26),
        date(2024, 11, 27),
        now=now,
    )
    assert cov["expected"].tolist() == [78, 6]
    assert coverage_states(cov).shape == (1, 2)
