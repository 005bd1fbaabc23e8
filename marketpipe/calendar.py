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
- **A daily timestamp is mapped to its session by the exchange-local date** (New York for XNYS),
  except 00:00 UTC itself, which is the daily key and means that UTC date. So
  `2024-01-03T20:00-05:00` belongs to the 2024-01-03 session and a local-midnight stamp such as
  `2024-01-02T00:00+09:00` (2024-01-01 10:00 ET) to 2024-01-01 — never silently to the next or
  previous session. The Bars contract stores a daily bar only at its key (00:00 UTC of a session
  date); any other daily stamp is quarantined (`misaligned`, plus `not_a_session` when its local
  date is not a session). `bar_start_flags(ts, interval)` is this rule, vectorised.
- `now` (where accepted) limits results to bars that are *complete* at `now`: a bar is complete once
  `min(start + interval, session close) <= now` (a daily bar once its session has closed).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import NamedTuple

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pyarrow as pa

from marketpipe.bars import (
    EXCHANGE_TZ,
    INTERVAL_OFFSETS,
    STORED_INTERVALS,
    TS_DTYPE,
    session_column,
)
from marketpipe.errors import ConfigError

__all__ = [
    "CALENDAR_START",
    "EXCHANGE_TZ",
    "bar_schedule",
    "bar_start_flags",
    "bars_in_span",
    "bars_per_regular_session",
    "daily_bar_start",
    "exchange_date",
    "expected_bar_starts",
    "expected_per_session",
    "overlaps_regular_hours",
    "regular_session_minutes",
    "get_calendar",
    "interval_step",
    "is_session",
    "last_closed_session",
    "session_bounds",
    "session_date",
    "session_dates",
    "session_labels",
    "session_schedule",
    "sessions",
]

# exchange_calendars' default covers only the last 20 years; long backfills need more.
CALENDAR_START = "1990-01-01"

# XNYS's zone (`get_calendar().tz`), as a constant for code that needs it without building the
# calendar (defined in `bars.py`, which the session column needs); tests/test_calendar.py checks
# the two agree.

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
    if interval not in STORED_INTERVALS:  # sub-minute bars (real-time) step from the open too
        raise ConfigError(
            f"unknown interval {interval!r}; use one of {', '.join(STORED_INTERVALS)}"
        )
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
    # one implementation: the vectorised rule that fills the `session` column (`bars.py`, which
    # sits below this module and so cannot import it)
    index = pd.DatetimeIndex(ts)
    series = pd.Series(index.tz_localize("UTC") if index.tz is None else index)
    # through Arrow: `ArrowDtype.to_numpy` would box every value in Python
    return pa.array(session_column(series, interval).array).to_numpy(zero_copy_only=False)


# ------------------------------------------------------------------ bar-start membership
_DAY_US = 86_400_000_000


class _SessionTable(NamedTuple):
    """Every session the calendar knows, as int64 microseconds UTC, plus per-UTC-day lookups."""

    labels: np.ndarray  # session date at 00:00 UTC (the daily bar key)
    opens: np.ndarray
    closes: np.ndarray
    first_day: int  # UTC day number (days since 1970-01-01) of `last_open_by_day[0]`
    last_open_by_day: np.ndarray  # per UTC day: index of the last session opening before its end
    is_session_day: np.ndarray  # per UTC day: a session has this date


@lru_cache(maxsize=8)
def _session_table(exchange: str = "XNYS") -> _SessionTable:
    cal = get_calendar(exchange)
    labels = pd.DatetimeIndex(cal.sessions).as_unit("us").asi8
    opens = pd.DatetimeIndex(cal.opens).tz_convert("UTC").as_unit("us").asi8
    closes = pd.DatetimeIndex(cal.closes).tz_convert("UTC").as_unit("us").asi8
    first_day = int(min(labels[0], opens[0]) // _DAY_US) - 1
    days = np.arange(first_day, int(closes[-1] // _DAY_US) + 2, dtype=np.int64)
    last_open = np.searchsorted(opens, (days + 1) * _DAY_US, side="left") - 1
    is_day = np.zeros(len(days), dtype=bool)
    is_day[labels // _DAY_US - first_day] = True
    return _SessionTable(labels, opens, closes, first_day, last_open, is_day)


def _day_slots(us: np.ndarray, table: _SessionTable) -> tuple[np.ndarray, np.ndarray]:
    """(slot into the per-day lookups, whether the day is inside the table) for UTC microseconds."""
    slot = us // _DAY_US - table.first_day
    inside = (slot >= 0) & (slot < len(table.is_session_day))
    return np.where(inside, slot, 0), inside


def interval_step(interval: str) -> pd.Timedelta:
    """The length of one bar of `interval` (`1s` … `30s`, `1m`, `5m`, `15m`, `1h`, `1d`)."""
    if interval in INTERVAL_OFFSETS:
        return INTERVAL_OFFSETS[interval]
    if interval.endswith("s") and interval[:-1].isdigit() and int(interval[:-1]) > 0:
        return pd.Timedelta(seconds=int(interval[:-1]))
    raise ConfigError(f"unknown interval {interval!r}")


def bar_start_flags(
    ts: pd.Series | pd.DatetimeIndex, interval: str, exchange: str = "XNYS"
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `(in_session, on_bar_start)` for tz-aware bar starts `ts` of one interval.

    Intraday (and sub-minute) bars: `in_session` when `open <= ts < close` of some session (early
    closes and DST from the calendar); `on_bar_start` when, in addition, `ts - open` is a whole
    number of intervals (`1h` bars are open-aligned: 09:30, 10:30, … ET).
    Daily bars: the bar is mapped to its session by the **exchange-local date** of `ts`, unless
    `ts` is already 00:00 UTC, the daily key, which means that UTC date; `in_session` when that
    date is a session, `on_bar_start` when `ts` is exactly 00:00 UTC (any other stamp, e.g.
    `2024-01-03T20:00-05:00` for the 2024-01-03 session or a `+09:00` local midnight, is not a
    daily key). NaT counts as in session and aligned (missing values are someone else's failure).
    Sessions are known from `CALENDAR_START` to about a year ahead; a bar outside that range
    cannot be judged and counts as in session and aligned (a daily one must still be 00:00 UTC).
    """
    index = pd.DatetimeIndex(ts)
    if index.tz is None:
        raise ConfigError("bar starts must be time-zone aware")
    us = index.as_unit("us").asi8  # UTC microseconds; NaT is int64 min
    nat = np.asarray(index.isna())
    table = _session_table(exchange)
    if interval == "1d":
        aligned = (us % _DAY_US) == 0
        day = us
        off = ~aligned & ~nat
        if off.any():
            day = us.copy()
            local = index[off].tz_convert(get_calendar(exchange).tz).tz_localize(None)
            day[off] = local.normalize().as_unit("us").asi8
        slot, inside = _day_slots(day, table)
        in_session = ~inside | table.is_session_day[slot]
    else:
        step = interval_step(interval).value // 1000
        slot, inside = _day_slots(us, table)
        at = table.last_open_by_day[slot]  # the session opening last before this day ends ...
        at = at - (us < table.opens[np.maximum(at, 0)])  # ... or the one before, if ts precedes it
        safe = np.maximum(at, 0)
        open_us = table.opens[safe]
        known = (at >= 0) & (us >= open_us) & (us < table.closes[safe])
        aligned = ~inside | (known & ((us - open_us) % step == 0))
        in_session = ~inside | known
    return in_session | nat, aligned | nat


def session_labels(ts: pd.Series, interval: str | pd.Series, exchange: str = "XNYS") -> pd.Series:
    """`session_dates` as a Series of tz-naive midnights (`datetime64[ns]`) aligned with `ts`.

    `interval` may be one interval or a Series of them (one per bar, e.g. a multi-interval frame).
    """
    if isinstance(interval, str):
        days = session_dates(ts, interval, exchange)
    else:
        daily = (interval == "1d").to_numpy()
        days = np.where(daily, session_dates(ts, "1d", exchange), session_dates(ts, "1m", exchange))
    return pd.Series(days.astype("datetime64[ns]"), index=ts.index)


def session_date(ts: pd.Timestamp | datetime, interval: str, exchange: str = "XNYS") -> date:
    """The session date one bar start belongs to (scalar form of `session_dates`)."""
    return session_dates(pd.DatetimeIndex([pd.Timestamp(ts)]), interval, exchange)[0].item()


def exchange_date(now: pd.Timestamp | datetime | None = None, exchange: str = "XNYS") -> date:
    """The exchange-local calendar date of an instant (default: wall clock; naive = UTC)."""
    ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert(get_calendar(exchange).tz).date()


def daily_bar_start(ts_utc: pd.Series, exchange: str = "XNYS") -> pd.Series:
    """The daily-bar key of vendor instants: their exchange-local date at 00:00 UTC."""
    local = ts_utc.dt.tz_convert(get_calendar(exchange).tz).dt.tz_localize(None).dt.normalize()
    return local.dt.tz_localize("UTC").astype(TS_DTYPE)


def session_schedule(start: DateLike, end: DateLike, exchange: str = "XNYS") -> pd.DataFrame:
    """Sessions in `[start, end]` (dates, inclusive): index tz-naive session labels, columns
    `open`, `close` (UTC). Empty (same columns) when there are none."""
    cal = get_calendar(exchange)
    labels = sessions(start, end, exchange)
    return pd.DataFrame(
        {"open": cal.opens.reindex(labels), "close": cal.closes.reindex(labels)}, index=labels
    )


def expected_per_session(
    interval: str,
    start: DateLike,
    end: DateLike,
    exchange: str = "XNYS",
    now: pd.Timestamp | datetime | None = None,
) -> pd.Series:
    """Expected bars per session in `[start, end]`: int64 indexed by tz-naive session label,
    one entry per session (0 when `now` precedes its first complete bar)."""
    schedule = bar_schedule(interval, start, end, exchange)
    labels = sessions(start, end, exchange)
    if now is not None:
        schedule = schedule[schedule["end"] <= _now_utc(now)]
    counts = schedule.groupby("session").size()
    return counts.reindex(labels, fill_value=0).astype("int64")


def bars_in_span(interval: str, minutes: float) -> int:
    """Bars of `interval` that a span of `minutes` holds (a short last bar counts); `1d`: 1."""
    if interval == "1d":
        return 1
    step = INTERVAL_OFFSETS[interval].total_seconds() / 60
    return int(-(-minutes // step))


@lru_cache(maxsize=32)
def bars_per_regular_session(interval: str, exchange: str = "XNYS") -> int:
    """Bars in a full (not early-close) session: 390 for `1m`, 7 for `1h` (a short last bar)."""
    return bars_in_span(interval, regular_session_minutes(exchange))


@lru_cache(maxsize=8)
def regular_session_minutes(exchange: str = "XNYS") -> float:
    """Length of a full (not early-close) session in minutes: 390 for XNYS."""
    cal = get_calendar(exchange)
    return float(((cal.closes - cal.opens).dt.total_seconds() / 60).mode().iloc[0])


def overlaps_regular_hours(ts: pd.Series, interval: str, exchange: str = "XNYS") -> np.ndarray:
    """Per intraday bar start: does `[start, start + interval)` overlap its session's
    `[open, close)`? (False on non-session days; daily bars: always True.)"""
    if interval == "1d":
        return np.ones(len(ts), dtype=bool)
    labels = session_labels(ts, interval, exchange)
    sched = session_schedule(labels.min(), labels.max(), exchange) if len(ts) else None
    if sched is None or sched.empty:
        return np.zeros(len(ts), dtype=bool)
    opens = pd.DatetimeIndex(sched["open"].reindex(labels.to_numpy()))
    closes = pd.DatetimeIndex(sched["close"].reindex(labels.to_numpy()))
    start = pd.DatetimeIndex(ts).tz_convert("UTC")
    end = start + INTERVAL_OFFSETS[interval]
    inside = (start < closes) & (end > opens)
    return np.asarray(inside, dtype=bool) & opens.notna()
