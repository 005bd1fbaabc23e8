"""Per-bar features for each `(symbol, interval)` series, vectorised over the whole frame.

Every rolling statistic is one pandas/Cython pass over the frame sorted by `(symbol, interval, ts)`
with windows clipped to their own series (see `_window.GroupWindow`), so nothing leaks from one
symbol into the next and no Python loop runs per row or per symbol.

Conventions (defaults in brackets)
----------------------------------
* `ret` = close / previous close - 1; `log_ret` = ln(close / previous close); NaN on a series' first bar.
* `vwap` = the bar's own vwap when present, else the typical price (high + low + close) / 3.
  Not a cumulative session VWAP.
* `sma_{w}` [20, 50]: mean of the last `w` closes; NaN until `w` closes exist.
* `ema_{s}` [12, 26]: recursion `e_t = a * c_t + (1 - a) * e_{t-1}`, `a = 2 / (s + 1)`, seeded with
  the series' first close (`ewm(span=s, adjust=False)`); NaN for the first `s - 1` bars (warm-up).
* `rsi_{n}` [14]: Wilder. Changes `d_t = c_t - c_{t-1}`, gains `max(d, 0)`, losses `max(-d, 0)`.
  The first average is the simple mean of the first `n` changes (at the series' bar `n`), then
  `avg_t = avg_{t-1} + (x_t - avg_{t-1}) / n` (i.e. `ewm(alpha=1/n, adjust=False)` from that seed).
  RSI = 100 - 100 / (1 + avg_gain / avg_loss); 100 when avg_loss = 0 < avg_gain, 50 when both are 0.
* Bollinger [20, 2.0]: `bb_mid` = SMA of closes over `bb_window`, band = `bb_k` x population std
  (ddof=0, the classic definition); `bb_upper/lower = mid +/- band`.
* `rv_{w}` [20]: sample std (ddof=1) of the last `w` log returns, per bar, not annualised.
* `outlier_flags` is carried over from the input (e.g. from `clean_bars`), else "".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from marketpipe.processing._window import GroupWindow, group_bounds, sort_by_group_and_ts

KEY_COLUMNS: tuple[str, ...] = ("symbol", "interval", "ts")


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


def _wilder_rsi(close: np.ndarray, pos: np.ndarray, gid: np.ndarray, gwin, n: int) -> np.ndarray:
    """Wilder RSI on a frame of contiguous series; `pos` = row position inside its series."""
    delta = np.where(pos > 0, close - np.roll(close, 1), np.nan)
    avgs = []
    for x in (np.where(delta > 0, delta, 0.0), np.where(delta < 0, -delta, 0.0)):
        x = np.where(pos > 0, x, np.nan)
        seed = pd.Series(x).rolling(gwin(n), min_periods=n).mean().to_numpy()
        seeded = np.where(pos == n, seed, np.where(pos > n, x, np.nan))
        avgs.append(_group_ewm(seeded, gid, pos, alpha=1.0 / n))
    gain, loss = avgs
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + gain / loss)
    rsi = np.where((loss == 0) & (gain > 0), 100.0, rsi)
    rsi = np.where((loss == 0) & (gain == 0), 50.0, rsi)
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
) -> pd.DataFrame:
    """Features per bar (see the module docstring), sorted by `(symbol, interval, ts)`."""
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
    gstart, gend = group_bounds(codes)
    pos = np.arange(len(df)) - gstart

    windows: dict[int, GroupWindow] = {}

    def trailing(w: int) -> GroupWindow:  # bounds computed once per window length
        if w not in windows:
            windows[w] = GroupWindow(gstart, gend, before=w - 1, after=0)
        return windows[w]

    close_s = df["close"].astype("float64")
    close = close_s.to_numpy()
    prev = np.where(pos > 0, np.roll(close, 1), np.nan)
    out = df[list(KEY_COLUMNS)].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ret"] = close / prev - 1.0
        log_ret = np.log(close / prev)
    out["log_ret"] = log_ret
    typical = (df["high"] + df["low"] + df["close"]) / 3.0
    vwap = df["vwap"].astype("float64") if "vwap" in df.columns else None
    out["vwap"] = typical if vwap is None else vwap.fillna(typical)
    for w in sma_windows:
        out[f"sma_{w}"] = close_s.rolling(trailing(w), min_periods=w).mean().to_numpy()
    for s in ema_spans:
        out[f"ema_{s}"] = _group_ewm(close, codes, pos, alpha=2.0 / (s + 1.0), min_periods=s)
    out[f"rsi_{rsi_period}"] = _wilder_rsi(close, pos, codes, trailing, rsi_period)
    roll = close_s.rolling(trailing(bb_window), min_periods=bb_window)
    mid = roll.mean().to_numpy()
    band = bb_k * roll.std(ddof=0).to_numpy()
    out["bb_mid"], out["bb_upper"], out["bb_lower"] = mid, mid + band, mid - band
    rv = pd.Series(log_ret).rolling(trailing(rv_window), min_periods=rv_window).std(ddof=1)
    out[f"rv_{rv_window}"] = rv.to_numpy()
    if "outlier_flags" in df.columns:
        out["outlier_flags"] = df["outlier_flags"].fillna("").astype("str")
    else:
        out["outlier_flags"] = pd.Series("", index=out.index, dtype="str")
    return out[cols]
