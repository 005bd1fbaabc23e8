"""Quality score: counts per session, staleness of the latest session, score formula."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from marketpipe.bars import conform_bars
from marketpipe.processing.clean import clean_bars
from marketpipe.processing.quality import (
    QUALITY_COLUMNS,
    calendar_expected,
    count_quarantined,
    quality_scores,
)

FRI, MON = dt.date(2024, 3, 8), dt.date(2024, 3, 11)


def bars_at(ts, symbol="AAPL", interval="1m") -> pd.DataFrame:
    ts = pd.DatetimeIndex(ts)
    n = len(ts)
    c = 100.0 + np.arange(n) * 0.01
    return conform_bars(
        pd.DataFrame(
            {
                "symbol": symbol,
                "interval": interval,
                "ts": ts,
                "open": c,
                "high": c + 0.05,
                "low": c - 0.05,
                "close": c,
                "volume": 100.0,
                "source": "polygon",
            }
        )
    )


def test_calendar_expected_counts():
    assert calendar_expected("1m", FRI) == 390
    assert calendar_expected("1h", FRI) == 7  # ... 15:30-16:00 short bar
    assert calendar_expected("5m", dt.date(2024, 11, 29)) == 42  # early close 13:00
    assert calendar_expected("1d", FRI) == 1
    assert calendar_expected("1m", dt.date(2024, 3, 9)) == 0  # Saturday
    # in progress: only bars that have ended by `now`
    assert calendar_expected("1m", MON, pd.Timestamp("2024-03-11 13:40:30", tz="UTC")) == 10
    assert calendar_expected("1d", MON, pd.Timestamp("2024-03-11 15:00", tz="UTC")) == 0


def test_complete_past_session_scores_one_and_gaps_cost():
    full = pd.date_range("2024-03-08 14:30", periods=390, freq="1min", tz="UTC")
    mon = pd.date_range("2024-03-11 13:30", periods=390, freq="1min", tz="UTC")
    bars = bars_at(full.append(mon.delete(range(100, 139))))  # 39 bars missing on Monday
    now = pd.Timestamp("2024-03-12 12:00", tz="UTC")
    q = quality_scores(bars, now=now)
    assert list(q.columns) == list(QUALITY_COLUMNS)
    fri, mon_row = q.iloc[0], q.iloc[1]
    assert (fri["session"], fri["expected"], fri["present"], fri["missing"]) == (FRI, 390, 390, 0)
    assert fri["staleness_s"] == 0.0 and fri["score"] == 1.0
    assert (mon_row["present"], mon_row["missing"]) == (351, 39)
    # latest session incomplete: staleness = now - end of the last bar (Mon 20:00 UTC) = 16 h
    assert mon_row["staleness_s"] == 16 * 3600.0
    grace = 120.0
    assert mon_row["score"] == pytest.approx(351 / 390 * grace / (16 * 3600.0), rel=1e-12)
    assert (q["computed_at"] == now).all()


def test_quarantine_outliers_and_open_session():
    mon = pd.date_range("2024-03-11 13:30", periods=60, freq="1min", tz="UTC")
    bars = bars_at(mon)
    bars.loc[10, ["high", "low"]] = bars.loc[10, "close"]  # zero range with volume -> outlier
    cleaned = clean_bars(bars)
    quarantine = pd.DataFrame(
        {"symbol": ["AAPL"] * 3, "interval": ["1m"] * 3, "ts": mon[[20, 21, 22]], "reason": "x"}
    )
    counts = count_quarantined(quarantine)
    assert counts["quarantined"].tolist() == [3]
    now = pd.Timestamp("2024-03-11 14:30:30", tz="UTC")  # 60 bars ended, session still open
    q = quality_scores(cleaned.bars, None, counts, cleaned.flags, now)
    row = q.iloc[0]
    assert (row["expected"], row["present"], row["quarantined"], row["outliers"]) == (60, 60, 3, 1)
    assert row["staleness_s"] == 30.0
    assert row["score"] == pytest.approx((1 - 3 / 63) * (1 - 1 / 60), rel=1e-12)


def test_missing_whole_session_and_explicit_expected():
    fri = pd.date_range("2024-03-07 14:30", periods=390, freq="1min", tz="UTC")
    mon = pd.date_range("2024-03-11 13:30", periods=390, freq="1min", tz="UTC")
    bars = bars_at(fri.append(mon))  # Friday 2024-03-08 has no bars at all
    expected = {("1m", dt.date(2024, 3, 7)): 390, ("1m", FRI): 390, ("1m", MON): 390}
    q = quality_scores(bars, expected, None, None, pd.Timestamp("2024-03-12", tz="UTC"))
    assert q["session"].tolist() == [dt.date(2024, 3, 7), FRI, MON]
    assert q["present"].tolist() == [390, 0, 390]
    assert q["score"].tolist() == [1.0, 0.0, 1.0]
    q2 = quality_scores(bars, lambda i, s: 400, now=pd.Timestamp("2024-03-12", tz="UTC"))
    assert q2["missing"].tolist() == [10, 400, 10]


def test_daily_staleness_uses_session_close():
    bars = bars_at(pd.to_datetime(["2024-03-07", "2024-03-08"], utc=True), interval="1d")
    now = pd.Timestamp("2024-03-11 21:00", tz="UTC")  # Monday's close, Monday bar missing
    q = quality_scores(bars, now=now, sessions=[MON])
    assert q["session"].tolist() == [dt.date(2024, 3, 7), FRI, MON]
    assert q["staleness_s"].tolist() == [
        0.0,
        0.0,
        (now - pd.Timestamp("2024-03-08 21:00Z")).total_seconds(),
    ]
    assert q["missing"].tolist() == [0, 0, 1]
    assert 0.0 <= q["score"].min() and q["score"].max() <= 1.0


def test_extended_hours_bars_do_not_count_as_present():
    pre = pd.date_range("2024-03-08 13:00", periods=90, freq="1min", tz="UTC")  # 08:00-09:29 ET
    regular = pd.date_range("2024-03-08 14:30", periods=300, freq="1min", tz="UTC")
    q = quality_scores(bars_at(pre.append(regular)), now=pd.Timestamp("2024-03-09", tz="UTC"))
    assert (q.loc[0, "present"], q.loc[0, "missing"]) == (300, 90)
