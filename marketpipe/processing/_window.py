"""Group-aware rolling windows: one Cython pass over a frame sorted by group, no window crossing.

`pandas.core.window` accepts a custom `BaseIndexer`; this one clips every window to its own group's
rows, so a single `Series.rolling(indexer)` call is exact per group (a window that would reach into
the previous group is simply shorter, and `min_periods` turns it into NaN during warm-up).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer


def group_bounds(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: index of its group's first row and one past its group's last row.

    `codes` must be contiguous (rows sorted by group).
    """
    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    is_start = np.empty(n, dtype=bool)
    is_start[0] = True
    is_start[1:] = codes[1:] != codes[:-1]
    starts = np.flatnonzero(is_start)
    ends = np.append(starts[1:], n)
    sizes = ends - starts
    return np.repeat(starts, sizes).astype(np.int64), np.repeat(ends, sizes).astype(np.int64)


def to_us(ts: pd.Series) -> np.ndarray:
    """UTC timestamps (tz-aware or naive UTC) as int64 microseconds since the epoch; NaT -> min."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.to_numpy().astype("datetime64[us]").view(np.int64)


def group_codes(df: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Integer group code per row, numbered in sorted key order."""
    return df.groupby(keys, sort=True, observed=True).ngroup().to_numpy()


def sort_by_group_and_ts(df: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """`df` sorted by `(*keys, ts)` with a fresh RangeIndex, plus its group codes.

    Skips the (costly) sort when the frame is already in that order.
    """
    codes = group_codes(df, keys)
    ts = to_us(df["ts"])
    dc, dt = np.diff(codes), np.diff(ts)
    if len(df) and ((dc > 0) | ((dc == 0) & (dt >= 0))).all():
        return df.reset_index(drop=True), codes
    order = np.lexsort((ts, codes))
    return df.iloc[order].reset_index(drop=True), codes[order]


class GroupWindow(BaseIndexer):
    """Window `[i - before, i + after]` (inclusive), clipped to the row's group.

    `before=w-1, after=0` is a trailing window of `w` rows; `before=w, after=-1` is the `w` rows
    strictly before `i`; `before=after=w//2` is centred.
    """

    def __init__(self, gstart: np.ndarray, gend: np.ndarray, before: int, after: int = 0):
        super().__init__()
        self.gstart = gstart
        self.gend = gend
        self.before = before
        self.after = after

        self._bounds: tuple[np.ndarray, np.ndarray] | None = None

    def get_window_bounds(
        self, num_values=0, min_periods=None, center=None, closed=None, step=None
    ):
        if self._bounds is None or len(self._bounds[0]) != num_values:
            idx = np.arange(num_values, dtype=np.int64)
            start = np.maximum(idx - self.before, self.gstart)
            end = np.minimum(idx + self.after + 1, self.gend)
            self._bounds = (start, np.maximum(end, start))
        return self._bounds
