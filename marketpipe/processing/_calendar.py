"""Tiny private bridge to the exchange calendar (XNYS sessions, opens and closes in UTC).

Kept in one place so the lead can later point it at `marketpipe.calendar`.
"""

from __future__ import annotations

from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

EXCHANGE_TZ = "America/New_York"


@lru_cache(maxsize=1)
def _xnys():
    return xcals.get_calendar("XNYS", start="1990-01-01")


def schedule(start, end) -> pd.DataFrame:
    """Sessions between `start` and `end` (dates, inclusive, clipped to the calendar's range).

    Index: naive session dates (`datetime64[ns]`); columns `open`, `close` (UTC timestamps).
    """
    cal = _xnys()
    lo = max(pd.Timestamp(start).normalize(), cal.first_session)
    hi = min(pd.Timestamp(end).normalize(), cal.last_session)
    if lo > hi:
        return cal.schedule.iloc[:0][["open", "close"]]
    return cal.schedule.loc[lo:hi, ["open", "close"]]


def session_dates(ts: pd.Series, interval: pd.Series | str) -> pd.Series:
    """Naive session date per bar: exchange-local date for intraday, the UTC date for `1d`."""
    local = ts.dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()
    utc = ts.dt.tz_localize(None).dt.normalize()
    daily = (interval == "1d") if isinstance(interval, pd.Series) else interval == "1d"
    if isinstance(daily, bool):
        return utc if daily else local
    return utc.where(daily, local)
