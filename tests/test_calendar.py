"""XNYS sessions and expected bar starts: holidays, early closes, DST, per-interval counts, old dates."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from marketpipe.calendar import (
    bar_schedule,
    expected_bar_starts,
    get_calendar,
    is_session,
    last_closed_session,
    session_bounds,
    sessions,
)
from marketpipe.errors import ConfigError

UTC = "UTC"


def test_calendar_is_cached_and_reaches_back_to_1990():
    assert get_calendar() is get_calendar("XNYS")
    assert get_calendar().first_session == pd.Timestamp("1990-01-02")


def test_holiday_is_not_a_session():
    days = [d.date() for d in sessions(date(2024, 7, 1), date(2024, 7, 8))]
    assert days == [date(2024, 7, d) for d in (1, 2, 3, 5, 8)]
    assert not is_session(date(2024, 7, 4))
    assert is_session(date(2024, 7, 5))
    assert expected_bar_starts("1m", date(2024, 7, 4), date(2024, 7, 4)).empty


@pytest.mark.parametrize("day", [date(2024, 11, 29), date(2024, 7, 3)])
def test_early_close_ends_one_minute_bars_at_13_et(day):
    starts = expected_bar_starts("1m", day, day)
    assert len(starts) == 210  # 09:30-13:00 ET
    assert starts[0] == pd.Timestamp(f"{day} 09:30", tz="America/New_York")
    assert starts[-1] == pd.Timestamp(f"{day} 12:59", tz="America/New_York")
    open_, close = session_bounds(day)
    assert close == pd.Timestamp(f"{day} 13:00", tz="America/New_York")
    if day.month == 11:
        assert close == pd.Timestamp("2024-11-29T18:00:00Z")
        assert open_ == pd.Timestamp("2024-11-29T14:30:00Z")


def test_dst_change_moves_the_open_in_utc():
    before = expected_bar_starts("1m", date(2024, 3, 8), date(2024, 3, 8))
    after = expected_bar_starts("1m", date(2024, 3, 11), date(2024, 3, 11))
    assert before[0] == pd.Timestamp("2024-03-08T14:30:00Z")
    assert after[0] == pd.Timestamp("2024-03-11T13:30:00Z")
    assert before[-1] == pd.Timestamp("2024-03-08T20:59:00Z")
    assert after[-1] == pd.Timestamp("2024-03-11T19:59:00Z")
    assert len(before) == len(after) == 390


@pytest.mark.parametrize(
    "interval, full_day, early_close",
    [("1m", 390, 210), ("5m", 78, 42), ("15m", 26, 14), ("1h", 7, 4), ("1d", 1, 1)],
)
def test_bar_counts_per_session(interval, full_day, early_close):
    assert len(expected_bar_starts(interval, date(2024, 11, 27), date(2024, 11, 27))) == full_day
    assert len(expected_bar_starts(interval, date(2024, 11, 29), date(2024, 11, 29))) == early_close
    # the week of Thanksgiving: Mon-Wed full, Thu closed, Fri early close
    week = expected_bar_starts(interval, date(2024, 11, 25), date(2024, 11, 29))
    assert len(week) == 3 * full_day + early_close
    assert week.is_monotonic_increasing and week.is_unique
    assert str(week.dtype) == "datetime64[us, UTC]"


def test_hourly_bars_align_to_the_open_and_the_last_is_short():
    schedule = bar_schedule("1h", date(2024, 11, 27), date(2024, 11, 27))
    local = schedule["ts"].dt.tz_convert("America/New_York").dt.strftime("%H:%M").tolist()
    assert local == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    assert schedule["end"].iloc[-1] == pd.Timestamp("2024-11-27T21:00:00Z")  # 16:00 ET
    assert schedule["bar_index"].tolist() == list(range(7))


def test_daily_bars_are_keyed_by_session_date_at_midnight_utc():
    starts = expected_bar_starts("1d", date(2024, 3, 8), date(2024, 3, 12))
    assert list(starts) == [
        pd.Timestamp("2024-03-08T00:00:00Z"),
        pd.Timestamp("2024-03-11T00:00:00Z"),
        pd.Timestamp("2024-03-12T00:00:00Z"),
    ]


def test_dates_before_2006_work():
    assert is_session(date(2000, 1, 3))
    open_, close = session_bounds(date(2000, 1, 3))
    assert (open_, close) == (
        pd.Timestamp("2000-01-03T14:30:00Z"),
        pd.Timestamp("2000-01-03T21:00:00Z"),
    )
    assert len(expected_bar_starts("5m", date(2000, 1, 3), date(2000, 1, 7))) == 5 * 78
    assert len(sessions(date(1995, 1, 1), date(1995, 12, 31))) == 252


def test_now_keeps_only_complete_bars():
    now = pd.Timestamp("2024-11-29T14:35:30Z")
    starts = expected_bar_starts("1m", date(2024, 11, 29), date(2024, 11, 29), now=now)
    assert starts[-1] == pd.Timestamp("2024-11-29T14:34:00Z") and len(starts) == 5
    assert expected_bar_starts("1d", date(2024, 11, 29), date(2024, 11, 29), now=now).empty
    after_close = pd.Timestamp("2024-11-29T18:00:00Z")
    assert (
        len(expected_bar_starts("1d", date(2024, 11, 29), date(2024, 11, 29), now=after_close)) == 1
    )
    assert (
        len(expected_bar_starts("1h", date(2024, 11, 29), date(2024, 11, 29), now=after_close)) == 4
    )


def test_last_closed_session():
    assert last_closed_session(pd.Timestamp("2024-07-05T12:00:00Z")) == date(2024, 7, 3)
    assert last_closed_session(pd.Timestamp("2024-07-05T20:00:00Z")) == date(2024, 7, 5)
    assert last_closed_session(pd.Timestamp("2024-07-07T12:00:00Z")) == date(2024, 7, 5)
    assert last_closed_session(pd.Timestamp("2024-11-29T18:00:00Z")) == date(2024, 11, 29)
    with pytest.raises(ConfigError):
        last_closed_session(pd.Timestamp("2024-07-05T12:00:00"))


def test_bad_inputs():
    with pytest.raises(ConfigError):
        expected_bar_starts("2m", date(2024, 1, 2), date(2024, 1, 2))
    with pytest.raises(ConfigError):
        session_bounds(date(2024, 7, 4))
    assert sessions(date(2024, 1, 5), date(2024, 1, 1)).empty


def test_one_exchange_zone_and_regular_session_counts():
    from marketpipe.calendar import EXCHANGE_TZ, bars_in_span, bars_per_regular_session

    assert EXCHANGE_TZ == str(get_calendar().tz)
    # 09:30-16:00 is 390 minutes; 1h ends with a half-hour bar
    assert {i: bars_per_regular_session(i) for i in ("1m", "5m", "15m", "1h", "1d")} == {
        "1m": 390,
        "5m": 78,
        "15m": 26,
        "1h": 7,
        "1d": 1,
    }
    assert bars_in_span("1m", 960) == 960 and bars_in_span("1h", 960) == 16


def test_expected_per_session_matches_pandas_market_calendars():
    import pandas_market_calendars as pmc

    from marketpipe.calendar import expected_per_session

    sched = pmc.get_calendar("XNYS").schedule("2024-11-25", "2024-12-06")
    minutes = (sched["market_close"] - sched["market_open"]).dt.total_seconds() // 60
    for interval, step in (("1m", 1), ("5m", 5), ("1h", 60)):
        got = expected_per_session(interval, "2024-11-23", "2024-12-07")
        assert list(got.index) == list(sched.index)
        assert got.tolist() == [int(-(-m // step)) for m in minutes]
    # `now` counts only bars complete by then: 10 one-minute bars by 09:40:30 ET
    now = pd.Timestamp("2024-12-02 09:40:30", tz="America/New_York")
    assert expected_per_session("1m", "2024-12-02", "2024-12-02", now=now).tolist() == [10]


def test_session_membership_for_mixed_intervals():
    from marketpipe.calendar import exchange_date, session_date, session_labels

    ts = pd.Series(pd.to_datetime(["2024-07-03 00:00", "2024-07-04 01:30"], utc=True))
    labels = session_labels(ts, pd.Series(["1d", "1m"]))
    assert labels.tolist() == [pd.Timestamp("2024-07-03"), pd.Timestamp("2024-07-03")]
    assert session_date(ts[1], "1m") == date(2024, 7, 3)
    assert session_date(ts[1], "1d") == date(2024, 7, 4)
    assert exchange_date(ts[1]) == date(2024, 7, 3)


def test_overlaps_regular_hours_honours_early_closes():
    from marketpipe.calendar import overlaps_regular_hours

    # 2024-11-29 closes at 13:00 ET: the 12:59 bar is in, 13:00 and 16:00 bars are post-market
    local = ["09:29", "09:30", "12:59", "13:00", "16:00"]
    ts = pd.Series(
        pd.to_datetime([f"2024-11-29 {t}" for t in local]).tz_localize("America/New_York")
    )
    assert overlaps_regular_hours(ts.dt.tz_convert("UTC"), "1m").tolist() == [
        False,
        True,
        True,
        False,
        False,
    ]
    # a 5m bar starting 09:26 ends 09:31: it overlaps the open
    first = pd.Series([pd.Timestamp("2024-11-27 09:26", tz="America/New_York")])
    assert overlaps_regular_hours(first, "5m").tolist() == [True]
