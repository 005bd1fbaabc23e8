"""Per-bar features for each `(symbol, interval)` series, vectorised over the whole frame.

Every statistic is computed over the frame sorted by `(symbol, interval, ts)` with windows that
never cross into another series, so nothing leaks from one symbol into the next and no Python loop
runs per row or per symbol.

Definitions: TA-Lib's by default (the tests compare with `talib.SMA/EMA/RSI/BBANDS`)
----------------------------------------------------------------------------------
* `ret` = close / previous close - 1; `log_ret` = ln(close / previous close); NaN on a series' first bar.
* `vwap` = the bar's own vwap when present, else the typical price (high + low + close) / 3.
  Not a cumulative session VWAP.
* `sma_{w}` [20, 50]: mean of the last `w` closes; NaN until `w` closes exist (`talib.SMA`).
* `ema_{s}` [12, 26]: `e_t = a * c_t + (1 - a) * e_{t-1}`, `a = 2 / (s + 1)`, seeded at the series'
  bar `s - 1` with the SMA of its first `s` closes; NaN before (`talib.EMA`). Option
  `ema_seed="first"`: seeded with the first close instead (`ewm(span=s, adjust=False)`), still NaN
  for the first `s - 1` bars.
* `rsi_{n}` [14]: Wilder (`talib.RSI`). Changes `d_t = c_t - c_{t-1}`, gains `max(d, 0)`, losses
  `max(-d, 0)`. The first averages are the simple means of the first `n` changes (at bar `n`), then
  `avg_t = avg_{t-1} + (x_t - avg_{t-1}) / n`. RSI = 100 * avg_gain / (avg_gain + avg_loss); 0 when
  both averages are 0 (a flat series), as TA-Lib.
* Bollinger [20, 2.0]: `bb_mid` = SMA of closes over `bb_window`, band = `bb_k` x population std
  (ddof=0, `talib.BBANDS(nbdevup=nbdevdn=bb_k, matype=SMA)`); `bb_upper/lower = mid +/- band`.
* `rv_{w}` [20]: sample std (ddof=1) of the last `w` log returns, per bar, not annualised.
* `outlier_flags` is carried over from the input (e.g. from `clean_bars`), else "".

Window means and deviations are computed in two passes relative to each window's last value
(not with running sums), so a flat window gives its value exactly and a width of exactly 0, and a
window's result does not depend on how much history precedes it. Remaining difference from TA-Lib,
by design: TA-Lib treats a variance below 1e-8 (and an RSI denominator below 1e-8) as zero; here
only an exact zero is zero, so a nearly flat window keeps its true tiny width.

Warm-up: `warmup_bars(...)` is how many bars before a window a caller must include so that every
feature of the window equals the full-history value to `tol` (the longest window, and enough bars
for the EMA/RSI recursions' memory of their seed to decay below `tol`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from marketpipe.processing._window import group_bounds, sort_by_group_and_ts

KEY_COLUMNS: tuple[str, ...] = ("symbol", "interval", "ts")
_CHUNK_ROWS = 4_096  # rows per block of the two-pass window statistics (bounded memory)


def feature_columns(
    sma_windows: Sequence[int] = (20, 50),
    ema_spans: Sequence[int] = (12, 26),
    rsi_period: int = 14,
    rv_window: int = 20,
) -> list[str]:
    """Output column order of `compute_features` for the given configuration."""
    return [
        *KEY_COLUMNS,
        "ret",
        "log_ret",
        "vwap",
        *(f"sma_{w}" for w in sma_windows),
        *(f"ema_{s}" for s in ema_spans),
        f"rsi_{rsi_period}",
        "bb_mid",
        "bb_upper",
        "bb_lower",
        f"rv_{rv_window}",
        "outlier_flags",
    ]


def warmup_bars(
    sma_windows: Sequence[int] = (20, 50),
    ema_spans: Sequence[int] = (12, 26),
    rsi_period: int = 14,
    bb_window: int = 20,
    rv_window: int = 20,
    tol: float = 1e-12,
) -> int:
    """Bars of history before a window that make the window's features equal full history's.

    Windowed statistics need their longest window (+1 for returns); an EMA with factor `1 - a`
    forgets its seed as `(1 - a)^k`, so `k = ln(tol) / ln(1 - a)` bars make the seed's weight
    (and the difference from a series seeded earlier) smaller than `tol` relative to the prices.
    """
    longest = max([*sma_windows, bb_window, rv_window + 1, rsi_period + 1, *ema_spans, 1])
    decays = [1.0 - 2.0 / (s + 1.0) for s in ema_spans] + [1.0 - 1.0 / rsi_period]
    memory = max(math.ceil(math.log(tol) / math.log(d)) for d in decays if 0.0 < d < 1.0)
    return int(longest + memory)


def _window_stats(
    x: np.ndarray, pos: np.ndarray, w: int, ddof: int | None = None, first: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Trailing-`w` mean (and std with `ddof`) per row; NaN unless the window lies in the row's
    series at positions >= `first` (`pos` = row position in its series).

    Two passes per window relative to the window's last value: exact for flat windows, and
    independent of earlier rows (no running sums carried across the frame).
    """
    n = len(x)
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan) if ddof is not None else None
    if n >= w:
        view = sliding_window_view(x, w)  # row j = x[j : j + w], i.e. the window ending at j+w-1
        for a in range(0, len(view), _CHUNK_ROWS):
            v = view[a : a + _CHUNK_ROWS]
            anchor = v[:, -1]
            d = v - anchor[:, None]
            m = d.mean(axis=1)
            mean[a + w - 1 : a + w - 1 + len(v)] = anchor + m
            if std is not None:
                dev = d - m[:, None]
                var = np.einsum("ij,ij->i", dev, dev) / (w - ddof)
                std[a + w - 1 : a + w - 1 + len(v)] = np.sqrt(var)
    invalid = pos < w - 1 + first
    mean[invalid] = np.nan
    if std is not None:
        std[invalid] = np.nan
    return mean, std


def _first_window_mean(x: np.ndarray, pos: np.ndarray, w: int, first: int = 0) -> np.ndarray:
    """Per series, the mean of its window of `w` values ending at position `w - 1 + first` (the
    seed of an EMA/RSI recursion), NaN on every other row; same two-pass arithmetic as above."""
    out = np.full(len(x), np.nan)
    rows = np.flatnonzero(pos == w - 1 + first)
    if len(rows):
        v = x[rows[:, None] - np.arange(w - 1, -1, -1)]
        anchor = v[:, -1]
        out[rows] = anchor + (v - anchor[:, None]).mean(axis=1)
    return out


def _seeded_ewm(
    x: np.ndarray, seed: np.ndarray, at: int, gid: np.ndarray, pos: np.ndarray, alpha: float
) -> np.ndarray:
    """Per series: NaN before position `at`, `seed` there, then the recursion over `x`."""
    start = np.where(pos == at, seed, np.where(pos > at, x, np.nan))
    return _group_ewm(start, gid, pos, alpha=alpha)


def _wilder_rsi(close: np.ndarray, pos: np.ndarray, gid: np.ndarray, n: int) -> np.ndarray:
    """Wilder RSI (TA-Lib's) on a frame of contiguous series; `pos` = row position in its series."""
    delta = np.where(pos > 0, close - np.roll(close, 1), np.nan)
    avgs = []
    for x in (np.where(delta > 0, delta, 0.0), np.where(delta < 0, -delta, 0.0)):
        x = np.where(pos > 0, x, np.nan)
        seed = _first_window_mean(x, pos, n, first=1)
        avgs.append(_seeded_ewm(x, seed, n, gid, pos, alpha=1.0 / n))
    gain, loss = avgs
    total = gain + loss
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(total > 0, 100.0 * gain / total, 0.0)
    return np.where(pos >= n, rsi, np.nan)


def _group_ewm(
    x: np.ndarray, gid: np.ndarray, pos: np.ndarray, alpha: float, min_periods: int = 0
) -> np.ndarray:
    """`ewm(alpha, adjust=False).mean()` per contiguous group, returned in row order.

    Groups are laid out as the columns of a NaN-padded 2-D frame (row = position in the group), so
    one `DataFrame.ewm` call runs each group's recursion independently (trailing padding never
    affects earlier values). Falls back to `groupby().ewm()` when padding would exceed 4x the rows.
    """
    n_groups = int(gid[-1]) + 1 if len(gid) else 0
    longest = int(pos.max()) + 1 if len(pos) else 0
    if n_groups * longest > 4 * len(x) + 1024:
        res = pd.Series(x).groupby(gid, sort=False)
        res = res.ewm(alpha=alpha, adjust=False, min_periods=min_periods).mean()
        return res.to_numpy()  # contiguous groups in order of appearance = row order
    grid = np.full((longest, n_groups), np.nan, order="F")
    grid[pos, gid] = x
    ewm = pd.DataFrame(grid).ewm(alpha=alpha, adjust=False, min_periods=min_periods).mean()
    return ewm.to_numpy()[pos, gid]


def compute_features(
    bars: pd.DataFrame,
    sma_windows: Sequence[int] = (20, 50),
    ema_spans: Sequence[int] = (12, 26),
    rsi_period: int = 14,
    bb_window: int = 20,
    bb_k: float = 2.0,
    rv_window: int = 20,
    ema_seed: Literal["sma", "first"] = "sma",
) -> pd.DataFrame:
    """Features per bar (see the module docstring), sorted by `(symbol, interval, ts)`."""
    if ema_seed not in ("sma", "first"):
        raise ValueError(f"ema_seed must be 'sma' or 'first', not {ema_seed!r}")
    cols = feature_columns(sma_windows, ema_spans, rsi_period, rv_window)
    if bars.empty:
        out = pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
        return out.astype(
            {"symbol": "str", "interval": "str", "ts": bars["ts"].dtype, "outlier_flags": "str"}
        )
    used = [*KEY_COLUMNS, "high", "low", "close", "vwap", "outlier_flags"]
    df, codes = sort_by_group_and_ts(
        bars[[c for c in used if c in bars.columns]], ["symbol", "interval"]
    )
    gstart, _ = group_bounds(codes)
    pos = np.arange(len(df)) - gstart

    close = df["close"].astype("float64").to_numpy()
    prev = np.where(pos > 0, np.roll(close, 1), np.nan)
    out = df[list(KEY_COLUMNS)].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ret"] = close / prev - 1.0
        log_ret = np.log(close / prev)
    out["log_ret"] = log_ret
    typical = (df["high"] + df["low"] + df["close"]) / 3.0
    vwap = df["vwap"].astype("float64") if "vwap" in df.columns else None
    out["vwap"] = typical if vwap is None else vwap.fillna(typical)
    means: dict[int, np.ndarray] = {}

    def sma(w: int) -> np.ndarray:  # each window length computed once (bb_mid reuses sma_20)
        if w not in means:
            means[w] = _window_stats(close, pos, w)[0]
        return means[w]

    mid, sd = _window_stats(close, pos, bb_window, ddof=0)
    means[bb_window] = mid
    for w in sma_windows:
        out[f"sma_{w}"] = sma(w)
    for s in ema_spans:
        alpha = 2.0 / (s + 1.0)
        if ema_seed == "sma":
            seed = means[s] if s in means else _first_window_mean(close, pos, s)
            out[f"ema_{s}"] = _seeded_ewm(close, seed, s - 1, codes, pos, alpha)
        else:
            ema = _group_ewm(close, codes, pos, alpha=alpha)
            out[f"ema_{s}"] = np.where(pos >= s - 1, ema, np.nan)
    out[f"rsi_{rsi_period}"] = _wilder_rsi(close, pos, codes, rsi_period)
    band = bb_k * sd
    out["bb_mid"], out["bb_upper"], out["bb_lower"] = mid, mid + band, mid - band
    out[f"rv_{rv_window}"] = _window_stats(log_ret, pos, rv_window, ddof=1, first=1)[1]
    if "outlier_flags" in df.columns:
        out["outlier_flags"] = df["outlier_flags"].fillna("").astype("str")
    else:
        out["outlier_flags"] = pd.Series("", index=out.index, dtype="str")
    return out[cols]
