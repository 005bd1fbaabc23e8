"""plan_writes is pure and puts every row in exactly one tier; the boundary is `now - hot_days`."""

import pandas as pd
import pytest

from marketpipe.bars import conform_bars
from marketpipe.storage.router import plan_writes

NOW = pd.Timestamp("2024-06-30 12:00", tz="UTC")


def _bars(ts_list):
    n = len(ts_list)
    return conform_bars(
        pd.DataFrame(
            {
                "symbol": ["AAPL"] * n,
                "interval": ["1m"] * n,
                "ts": pd.to_datetime(ts_list, utc=True),
                "open": [10.0] * n,
                "high": [11.0] * n,
                "low": [9.0] * n,
                "close": [10.5] * n,
                "volume": [100.0] * n,
                "source": ["synthetic"] * n,
            }
        )
    )


@pytest.mark.parametrize(
    ("ts", "hot_days", "tier"),
    [
        ("2024-06-20 12:00", 10, "hot"),  # exactly at now - hot_days: hot
        ("2024-06-20 11:59:59", 10, "cold"),  # one second older: cold
        ("2024-06-20 12:00:00.000001", 10, "hot"),
        ("2024-06-30 12:00", 0, "hot"),  # hot_days=0: only rows at/after now stay hot
        ("2024-06-30 11:59", 0, "cold"),
        ("2000-01-03 00:00", 30, "cold"),
        ("2024-06-30 11:00", 30, "hot"),
    ],
)
def test_boundary(ts, hot_days, tier):
    plan = plan_writes(_bars([ts]), NOW, hot_days)
    assert len(plan.hot) == (tier == "hot")
    assert len(plan.cold) == (tier == "cold")
    assert plan.cutoff == NOW - pd.Timedelta(days=hot_days)


def test_every_row_in_exactly_one_tier_and_pure():
    ts = pd.date_range("2024-05-01", "2024-06-30", freq="7h", tz="UTC")
    bars = _bars(ts)
    plan = plan_writes(bars, NOW, 30)
    assert plan.rows == len(bars)
    assert set(plan.hot["ts"]).isdisjoint(set(plan.cold["ts"]))
    assert (plan.hot["ts"] >= NOW - pd.Timedelta(days=30)).all()
    assert (plan.cold["ts"] < NOW - pd.Timedelta(days=30)).all()
    again = plan_writes(bars, NOW, 30)
    pd.testing.assert_frame_equal(plan.hot, again.hot)
    pd.testing.assert_frame_equal(plan.cold, again.cold)


def test_naive_now_is_utc_and_negative_days_rejected():
    plan = plan_writes(_bars(["2024-06-25"]), pd.Timestamp("2024-06-30 12:00"), 10)
    assert len(plan.hot) == 1
    with pytest.raises(ValueError):
        plan_writes(_bars(["2024-06-25"]), NOW, -1)


def test_empty():
    plan = plan_writes(_bars([]), NOW, 30)
    assert plan.hot.empty and plan.cold.empty
