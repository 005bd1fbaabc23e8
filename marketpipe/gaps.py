"""Calendar-aware completeness: which expected bars are missing, as ranges, and how to fetch them.

Expected bars come from `marketpipe.calendar.expected_bar_starts` (XNYS sessions, regular hours,
early closes and DST handled); present bars from hot ∪ cold via `read_bars`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from marketpipe.calendar import expected_bar_starts, session_date

__all__ = ["GapRange", "find_gaps", "missing_ranges", "repair_windows", "session_date"]


@dataclass(frozen=True)
class GapRange:
    """A run of consecutive expected bars that are missing: `first`..`last` inclusive, `count` bars."""

    symbol: str
    interval: str
    first: pd.Timestamp
    last: pd.Timestamp
    count: int

    def as_row(self) -> dict:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "missing": self.count,
        }


def missing_ranges(
    symbol: str, interval: str, expected: pd.DatetimeIndex, present: pd.Series | pd.Index
) -> list[GapRange]:
    """Group the expected bars absent from `present` into runs of consecutive expected positions."""
    if len(expected) == 0:
        return []
    have = (
        pd.DatetimeIndex(present).tz_convert("UTC")
        if len(present)
        else pd.DatetimeIndex([], tz="UTC")
    )
    missing_mask = ~expected.isin(have)
    if not missing_mask.any():
        return []
    pos = np.flatnonzero(missing_mask)
    breaks = np.flatnonzero(np.diff(pos) != 1) + 1
    out = []
    for run in np.split(pos, breaks):
        out.append(GapRange(symbol, interval, expected[run[0]], expected[run[-1]], int(len(run))))
    return out


def find_gaps(
    bars: pd.DataFrame,
    symbols: list[str],
    start: date,
    end: date,
    interval: str,
    now: pd.Timestamp | None = None,
) -> dict[str, list[GapRange]]:
    """Missing bars per symbol over [start, end] given the stored `bars` (hot ∪ cold)."""
    expected = expected_bar_starts(interval, start, end, now=now)
    out: dict[str, list[GapRange]] = {}
    for sym in symbols:
        present = bars.loc[bars["symbol"] == sym, "ts"] if not bars.empty else pd.Index([])
        out[sym] = missing_ranges(sym, interval, expected, present)
    return out


def repair_windows(
    gaps: list[GapRange], max_bars_per_request: int, expected: pd.DatetimeIndex
) -> list[tuple[date, date]]:
    """Date windows that cover every gap of one symbol with the fewest requests.

    Neighbouring gaps are merged into one window while the window's expected bar count stays within
    what one request returns (re-fetching present bars is harmless: writes are upserts).
    """
    if not gaps:
        return []
    windows: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    lo, hi = gaps[0].first, gaps[0].last
    for gap in gaps[1:]:
        span = int(((expected >= lo) & (expected <= gap.last)).sum())
        if span <= max_bars_per_request:
            hi = gap.last
        else:
            windows.append((lo, hi))
            lo, hi = gap.first, gap.last
    windows.append((lo, hi))
    interval = gaps[0].interval
    return [(session_date(a, interval), session_date(b, interval)) for a, b in windows]
