"""Exchange sessions and the bar starts a complete data set must contain (on `exchange_calendars`).

Conventions (every layer relies on these):

- **Daily bars (`1d`) are keyed by the session date at 00:00 UTC.** The 2024-07-03 session's daily bar
  has `ts = 2024-07-03T00:00:00Z`, even though trading ran 13:30-17:00 UTC. This is what vendors'
  daily stamps become once normalised: Polygon's daily aggregate `t` is the session date's midnight
  in New York, and Yahoo's daily timestamp is the session's open; both are mapped by taking the
  exchange-local *date* and stamping it at midnight UTC. The key therefore never depends on DST or
  on early closes, and a daily `ts.date()` is the session date.
- **Intraday bars** (`1m`, `5m`, `15m`, `1h`) start at the session open and step by the interval up
  to the close (exclusive). Opens and closes are computed by `exchange_calendars` in exchange time
  and returned in UTC, so DST (14:30 UTC in winter, 13:30 UTC in summer for XNYS) and early closes
  (13:00 ET, e.g. the day after Thanksgiving, July 3) are honoured.
- **`1h` bars are aligned to the open**, not to the clock hour: XNYS hourly bars start at 09:30,
  10:30, ..., 15:30 ET, and the last one (15:30-16:00) is a half-hour bar; on an early-close day the
  last bar is 12:30-13:00. Any interval that does not divide the session likewise ends with a short bar.
- Only regular trading hours; no pre/post-market bars.
- `now` (where accepted) limits results to bars that are *complete* at `now`: a bar is complete once
  `min(start + interval, session close) <= now` (a daily bar once its session has closed).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from marketpipe.bars import INTERVAL_OFFSETS, INTERVALS, TS_DTYPE
from marketpipe.errors import ConfigError

__all__ = [
    "CALENDAR_START",
    "bar_schedule",
    "expected_bar_starts",
    "get_calendar",
    "is_session",
    "last_closed_session",
    "session_bounds",
    "session_dates",
    "sessions",
]

# exchange_calendars' default covers only the last 20 years; long backfills need more.
CALENDAR_START = "1990-01-01"

DateLike = date | datetime | pd.Timestamp | str


@lru_cache(maxsize=8)
def get_calendar(exchange: str = "XNYS") -> xcals.ExchangeCalendar:
    """The exchange's calendar from 1990 onwards, built once per process."""
    try:
        return xcals.get_calendar(exchange, start=CALENDAR_START)
    except xcals.errors.InvalidCalendarName as exc:
        raise ConfigError(f"unknown exchange calendar {exchange!r}") from exc


def _day(value: DateLike) -> pd.Timestamp:
    """A tz-naive midnight timestamp (the form exchange_calendars uses for session labels)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts.normalize()


def sessions(start: DateLike, end: DateLike, exchange: str = "XNYS") -> pd.DatetimeIndex:
    """Session labels (tz-naive midnights) in the inclusive date range; empty when none."""
    cal = get_calendar(exchange)
    first, last = _day(start), _day(end)
    if last < first:
        return pd.DatetimeIndex([])
    first = max(first, cal.first_session)
    last = min(last, cal.last_session)
    if last < first:
        return pd.DatetimeIndex([])
    return cal.sessions_in_range(first, last)


def is_session(day: DateLike, exchange: str = "XNYS") -> bool:
    return bool(get_calendar(exchange).is_session(_day(day)))


def session_bounds(session: DateLike, exchange: str = "XNYS") -> tuple[pd.Timestamp, pd.Timestamp]:
    """(open, close) of one session, both tz-aware UTC. Raises `ConfigError` for a non-session."""
    cal = get_calendar(exchange)
    label = _day(session)
    if not cal.is_session(label):
        raise ConfigError(f"{label.date()} is not a {exchange} session")
    return cal.session_open(label), cal.session_close(label)


def _now_utc(now: pd.Timestamp | datetime | None) -> pd.Timestamp:
    ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if ts.tzinfo is None:
        raise ConfigError(f"now={ts} is naive; pass a time-zone-aware time")
    return ts.tz_convert("UTC")


def last_closed_session(now: pd.Timestamp | datetime | None = None, exchange: str = "XNYS") -> date:
    """The most recent session whose close is at or before `now` (default: wall clock)."""
    cal = get_calendar(exchange)
    now_utc = _now_utc(now)
    labels = sessions(now_utc.tz_localize(None) - pd.Timedelta(days=20), now_utc, exchange)
    closes = cal.closes.reindex(labels)
    done = labels[(closes <= now_utc).to_numpy()]
    if len(done) == 0:
        raise ConfigError(f"no closed {exchange} session before {now_utc}")
    return done[-1].date()


def bar_schedule(
    interval: str, start: DateLike, end: DateLike, exchange: str = "XNYS"
) -> pd.DataFrame:
    """One row per expected bar in `[start, end]`: `ts` (start, UTC), `end` (UTC, capped at the
    session close), `session` (tz-naive session label) and `bar_index` (0-based within the session).
    """
    if interval not in INTERVALS:
        raise ConfigError(f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}")
    cal = get_calendar(exchange)
    labels = sessions(start, end, exchange)
    opens = pd.DatetimeIndex(cal.opens.reindex(labels)).tz_convert("UTC").as_unit("us").asi8
    closes = pd.DatetimeIndex(cal.closes.reindex(labels)).tz_convert("UTC").as_unit("us").asi8
    if interval == "1d":
        counts = np.ones(len(labels), dtype=np.int64)
        start_us = labels.as_unit("us").asi8  # session date at 00:00 UTC
        end_us = closes
        bar_index = np.zeros(len(labels), dtype=np.int64)
    else:
        step = INTERVAL_OFFSETS[interval].value // 1000  # microseconds
        counts = -((opens - closes) // step)  # ceil((close - open) / step)
        bar_index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        start_us = np.repeat(opens, counts) + bar_index * step
        end_us = np.minimum(start_us + step, np.repeat(closes, counts))
    return pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(start_us.astype("datetime64[us]")).tz_localize("UTC"),
            "end": pd.DatetimeIndex(end_us.astype("datetime64[us]")).tz_localize("UTC"),
            "session": np.repeat(labels.as_unit("us").to_numpy(), counts),
            "bar_index": bar_index,
        }
    )


def expected_bar_starts(
    interval: str,
    start: DateLike,
    end: DateLike,
    exchange: str = "XNYS",
    now: pd.Timestamp | datetime | None = None,
) -> pd.DatetimeIndex:
    """Every bar start (UTC) a complete series has for sessions in `[start, end]` (dates, inclusive).

    With `now`, only bars complete by `now` are returned (see module docstring).
    """
    schedule = bar_schedule(interval, start, end, exchange)
    if now is not None:
        schedule = schedule[schedule["end"] <= _now_utc(now)]
    return pd.DatetimeIndex(schedule["ts"], name="ts").astype(TS_DTYPE)


def session_dates(
    ts: pd.Series | pd.DatetimeIndex, interval: str, exchange: str = "XNYS"
) -> np.ndarray:
    """The exchange session date (`datetime64[D]`) each bar start belongs to, vectorised.

    Daily bars are keyed at 00:00 UTC of their session date, so their session is the UTC date.
    Intraday bars (and sub-minute ones) belong to the exchange-local calendar date of their start.
    This is the value of the date-typed `session` column every bars table carries.
    """
    index = pd.DatetimeIndex(ts)
    if index.tz is None:
        index = index.tz_localize("UTC")
    if interval == "1d":
        local = index.tz_convert("UTC")
    else:
        local = index.tz_convert(get_calendar(exchange).tz)
    return local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")
