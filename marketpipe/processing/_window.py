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


def _key_codes(df: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, list]:
    """Per-key sorted factorization, combined into one code in lexicographic key order."""
    codes = np.zeros(len(df), dtype=np.int64)
    uniques = []
    for key in keys:
        kc, ku = pd.factorize(df[key], sort=True, use_na_sentinel=False)
        codes = codes * len(ku) + kc
        uniques.append((kc, ku))
    return codes, uniques


def group_codes(df: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Integer group code per row, increasing in sorted key order (not necessarily dense)."""
    return _key_codes(df, keys)[0]


def sort_by_group_and_ts(df: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """`df` sorted by `(*keys, ts)` with a fresh RangeIndex, plus dense group codes (0, 1, ...).

    Skips the (costly) sort when the frame is already in that order. Key columns are rebuilt from
    their few unique values instead of being gathered row by row (much cheaper for strings).
    """
    codes, uniques = _key_codes(df, keys)
    ts = to_us(df["ts"])
    dc, dt = np.diff(codes), np.diff(ts)
    if len(df) and ((dc > 0) | ((dc == 0) & (dt >= 0))).all():
        order = None
    else:
        rel = ts - ts.min()
        span = int(rel.max()) + 1
        if (int(codes.max()) + 1) * span < 2**62:  # one int64 key sorts faster than a lexsort
            order = np.argsort(codes * span + rel, kind="stable")
        else:
            order = np.lexsort((ts, codes))
    if order is None:
        out = df.reset_index(drop=True)
    else:
        codes = codes[order]
        rest = [c for c in df.columns if c not in keys]
        out = df[rest].iloc[order].reset_index(drop=True)
        for pos, (key, (kc, ku)) in enumerate(zip(keys, uniques, strict=True)):
            col = pd.Series(ku).take(kc[order]).reset_index(drop=True).astype(df[key].dtype)
            out.insert(pos, key, col)
        out = out[list(df.columns)]
    dense = np.zeros(len(codes), dtype=np.int64)  # codes are sorted now: renumber 0, 1, ...
    dense[1:] = np.cumsum(codes[1:] != codes[:-1])
    return out, dense


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
