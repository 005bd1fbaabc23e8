"""Reads for the processing stage that make stored features independent of the processing window.

A window `[start, end)` is processed from its bars plus enough history before `start`: at least
`need` bars per symbol (`features.warmup_bars()`: the longest lookback plus the bars the EMA/RSI
recursions need to forget their seed to 1e-12), or every stored bar when fewer exist. The
look-back grows (x4) until each symbol has `need` bars before `start` or the calendar's start is
reached, so gaps in the data never shorten the warm-up. Only the window's rows are written.

Dividends after the window are measured against the close of the session before their ex-date
(`adjust`), so that one session's bars are read too (`dividend_reference_bars`): the adjusted
history of a window then does not depend on how far the window reaches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, timedelta

import pandas as pd

from marketpipe.action_kinds import CASH_KINDS
from marketpipe.calendar import CALENDAR_START, sessions
from marketpipe.processing.adjust import previous_sessions

ReadFn = Callable[[list[str], date, date], pd.DataFrame]  # (symbols, start, end) -> bars
_FLOOR = date.fromisoformat(CALENDAR_START)


def bars_per_session(interval: str) -> int:
    """Bars in a full 6.5-hour session (1 for daily bars)."""
    if interval == "1d":
        return 1
    seconds = pd.Timedelta(interval.replace("m", "min")).total_seconds()
    return max(1, int(23_400 // seconds))


def sessions_before(day: date, n: int) -> date:
    """The date of the `n`-th session before `day` (the calendar's start when there are fewer)."""
    first = max(_FLOOR, day - timedelta(days=int(n * 7 / 5) + 10))
    labels = sessions(first, day - timedelta(days=1))
    if len(labels) < n:
        return _FLOOR
    return labels[-n].date()


def read_with_history(
    read: ReadFn, symbols: Sequence[str], start: date, end: date, interval: str, need: int
) -> pd.DataFrame:
    """The window's bars `[start, end)` plus >= `need` earlier bars per symbol (or all stored)."""
    window = read(list(symbols), start, end)
    parts = [window]
    present = sorted(set(window["symbol"].astype(str))) if len(window) else []
    have = dict.fromkeys(present, 0)
    short = present
    lo = start
    n_sessions = math.ceil(need / bars_per_session(interval)) + 1
    while short and lo > _FLOOR:
        new_lo = sessions_before(start, n_sessions)
        if new_lo >= lo:
            new_lo = _FLOOR
        part = read(short, new_lo, lo)
        if len(part):
            parts.insert(0, part)
            for sym, n in part["symbol"].astype(str).value_counts().items():
                have[sym] += int(n)
        short = [s for s in short if have[s] < need]
        lo = new_lo
        n_sessions *= 4
    frames = [p for p in parts if len(p)]
    if len(frames) <= 1:
        return window
    return pd.concat(frames, ignore_index=True).sort_values(
        ["symbol", "ts"], kind="stable", ignore_index=True
    )


def dividend_reference_bars(
    read: ReadFn, actions: pd.DataFrame, symbols: Sequence[str], end: date
) -> pd.DataFrame | None:
    """Bars of the session before each cash dividend with ex-date on/after `end` (None if none)."""
    if actions is None or actions.empty:
        return None
    cash = actions[actions["kind"].isin(CASH_KINDS) & actions["symbol"].isin(list(symbols))]
    ex = pd.to_datetime(cash["ex_date"]).dt.normalize()
    cash = cash.loc[(ex >= pd.Timestamp(end)).to_numpy()]
    if cash.empty:
        return None
    days = pd.to_datetime(cash["ex_date"]).dt.normalize().astype("datetime64[ns]")
    prev = previous_sessions(days.reset_index(drop=True))
    wanted = pd.DataFrame({"symbol": cash["symbol"].astype(str).to_numpy(), "day": prev})
    wanted = wanted.dropna().drop_duplicates()
    parts = []
    for day, grp in wanted.groupby("day"):
        d = pd.Timestamp(day).date()
        if d < end:  # already inside the window or its history
            continue
        part = read(sorted(grp["symbol"]), d, d + timedelta(days=1))
        if len(part):
            parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else None
