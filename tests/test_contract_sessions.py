"""The Bars contract knows sessions: `not_a_session` and `misaligned`, checked against
pandas-market-calendars (an independent XNYS calendar) and the adversarial cases of issue 16.3."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pandas_market_calendars as pmc
import pytest

from marketpipe.calendar import bar_start_flags
from marketpipe.contract import validate_bars
from marketpipe.providers import BarsQuery
from marketpipe.providers.synthetic import SyntheticProvider

NOW = pd.Timestamp("2025-06-01T00:00:00Z")


def bars_at(ts, interval: str) -> pd.DataFrame:
    """Clean one-row-per-stamp bars (OHLC valid) at the given stamps (text keeps its offset)."""
    n = len(ts)
    return pd.DataFrame(
        {
            "symbol": ["AAPL"] * n,
            "interval": [interval] * n,
            "ts": ts,
            "open": np.full(n, 100.0),
            "high": np.full(n, 101.0),
            "low": np.full(n, 99.0),
            "close": np.full(n, 100.5),
            "volume": np.full(n, 1000.0),
            "source": ["test"] * n,
        }
    )


def reasons(ts, interval: str) -> list[str]:
    """Reason per input row ('' = stored)."""
    frame = bars_at(list(ts), interval)
    frame["source"] = [str(i) for i in range(len(frame))]  # row identity survives into quarantine
    result = validate_bars(frame, now=NOW)
    out = [""] * len(frame)
    for src, reason in zip(result.quarantine["source"], result.quarantine["reason"], strict=True):
        out[int(src)] = reason
    assert len(result.valid) + len(result.quarantine) == len(frame)
    return out


@pytest.mark.parametrize(
    "interval, ts, reason",
    [
        # issue 16.3, one by one
        ("1m", "2024-01-03T14:30:00Z", ""),
        ("1m", "2024-01-03T14:30:17Z", "misaligned"),
        ("1m", "2024-01-03T14:31:59.999Z", "misaligned"),
        ("1h", "2024-01-03T15:00:00Z", "misaligned"),  # 10:00 ET: the clock hour, not open-aligned
        ("1h", "2024-01-03T08:00:00Z", "not_a_session"),  # 03:00 ET
        ("1h", "2024-01-03T14:30:00Z", ""),
        ("1h", "2024-01-03T20:30:00Z", ""),  # 15:30 ET, the short last hour
        ("1d", "2024-01-06T00:00:00Z", "not_a_session"),  # a Saturday
        # by exchange-local date this is the 2024-01-03 session, but its key is 00:00 UTC
        ("1d", "2024-01-03T20:00:00-05:00", "misaligned"),
        # local midnight +09:00 is the previous UTC/New York day: never taken as that session
        ("1d", "2024-01-02T00:00:00+09:00", "misaligned,not_a_session"),  # -> Jan 1, a holiday
        ("1d", "2024-01-04T00:00:00+09:00", "misaligned"),
        ("1d", "2024-01-03T00:00:00Z", ""),
        # sub-minute (what real time writes), other widths, DST and early closes
        ("1s", "2024-01-03T14:30:01Z", ""),
        ("1s", "2024-01-03T14:30:01.500Z", "misaligned"),
        ("1s", "2024-01-03T20:59:59Z", ""),
        ("1s", "2024-01-03T21:00:00Z", "not_a_session"),  # the close is not a bar start
        ("5s", "2024-01-03T14:30:05Z", ""),
        ("5s", "2024-01-03T14:30:07Z", "misaligned"),
        ("5m", "2024-01-03T14:32:00Z", "misaligned"),
        ("15m", "2024-01-03T14:45:00Z", ""),
        ("1m", "2024-07-01T13:30:00Z", ""),  # summer: 09:30 EDT
        ("1m", "2024-07-01T13:29:00Z", "not_a_session"),
        ("1m", "2024-11-29T17:59:00Z", ""),  # early close 13:00 ET
        ("1m", "2024-11-29T18:00:00Z", "not_a_session"),
        ("1m", "2024-12-25T15:00:00Z", "not_a_session"),  # Christmas
        # beyond the calendar (1990 .. about a year ahead) sessions cannot be judged
        ("1d", "2099-01-05T00:00:00Z", "future_bar"),
        ("1d", "2099-01-05T12:00:00Z", "future_bar,misaligned"),
        ("1m", "1985-01-02T14:30:17Z", ""),
    ],
)
def test_session_and_bar_start_cases(interval, ts, reason):
    assert reasons([ts], interval) == [reason]


def test_reasons_combine_with_other_checks_in_one_row():
    frame = bars_at(["2024-01-06T14:30:17Z"], "1m")
    frame.loc[0, "volume"] = 1e300
    q = validate_bars(frame, now=NOW).quarantine
    assert q["reason"].tolist() == ["not_a_session,out_of_range"]


SESSIONS = ("2024-01-01", "2024-12-31")  # DST both ways, early closes, every holiday of a year


def reference_bar_starts(interval: str) -> pd.DatetimeIndex:
    """Every open-aligned bar start from pandas-market-calendars' XNYS schedule."""
    schedule = pmc.get_calendar("XNYS").schedule(*SESSIONS)
    step = pd.Timedelta(interval.replace("m", "min"))
    starts = [
        pd.date_range(o, c - pd.Timedelta(microseconds=1), freq=step)
        for o, c in zip(schedule["market_open"], schedule["market_close"], strict=True)
    ]
    return pd.DatetimeIndex(np.concatenate([s.as_unit("us").to_numpy() for s in starts]), tz="UTC")


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h"])
def test_every_reference_bar_start_passes_and_shifted_ones_do_not(interval):
    starts = reference_bar_starts(interval)
    in_session, aligned = bar_start_flags(starts, interval)
    assert in_session.all() and aligned.all()
    shifted = starts + pd.Timedelta(seconds=17)  # inside the session, off the grid
    in_session, aligned = bar_start_flags(shifted, interval)
    assert in_session.all() and not aligned.any()
    # an hour before each session's open (08:30 ET) is outside every session
    opens = pmc.get_calendar("XNYS").schedule(*SESSIONS)["market_open"]
    early = pd.DatetimeIndex(opens) - pd.Timedelta(hours=1)
    assert not bar_start_flags(early, interval)[0].any()


def test_daily_keys_pass_exactly_on_reference_sessions():
    days = pd.date_range(*SESSIONS, freq="D", tz="UTC")
    sessions = set(pmc.get_calendar("XNYS").valid_days(*SESSIONS).tz_convert(None).normalize())
    in_session, aligned = bar_start_flags(days, "1d")
    assert aligned.all()
    assert list(in_session) == [d.tz_convert(None) in sessions for d in days]
    assert in_session.sum() == len(sessions) == 252


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h", "1d"])
def test_synthetic_provider_bars_are_all_aligned(interval):
    query = BarsQuery(("AAPL", "MSFT"), interval, date(2024, 1, 1), date(2024, 3, 31))
    bars = SyntheticProvider(seed=3, now=NOW).fetch(query).bars
    result = validate_bars(bars, now=NOW)
    assert len(bars) > 0 and result.quarantine.empty
