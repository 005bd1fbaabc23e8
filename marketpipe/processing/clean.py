"""Clean canonical bars: sort, de-duplicate by source priority, flag (never drop) outliers.

Conventions
-----------
* Duplicates on `(symbol, interval, ts)` are the only rows removed. The survivor is the row whose
  `source` comes first in `source_priority` (default: each provider's registry priority; unknown
  sources rank last; ties keep input order).
  `CleanResult.duplicates_removed` reports how many rows went, so
  `len(input) == len(result.bars) + result.duplicates_removed`.
* Outliers are flagged per `(symbol, interval)` group, vectorised (one rolling pass over the sorted
  frame with group-clipped windows):

  - `unit_error_100x`: the close is ~100x or ~0.01x the centred rolling median of its neighbours
    (`unit_window` bars, median includes the bar itself, so isolated bad bars do not move it):
    `| |log10(close / median)| - 2 | < 0.5`, i.e. a ratio between ~31.6 and ~316 either way.
    Yahoo's known fault. Spike detection then uses the close rescaled by the matching power of 100,
    so the bad bar and its neighbour are not also reported as spikes.
  - `spike`: the log return `r_t` (vs the previous bar of the group) satisfies
    `|r_t - mean| > z * std`, with mean and sample std (ddof=1) of the `window` returns strictly
    before `t` (at least `window // 2` of them). The reverting bar right after a one-bar spike
    is a large move too and may be flagged as well.
  - `zero_range_volume`: `high == low` with `volume > 0`.

* Output bars keep every input column plus `outlier_flags`: the reasons joined with `,` in the
  order `spike,unit_error_100x,zero_range_volume`, empty string for a clean bar. The flags frame
  has one row per (bar, reason): `symbol, interval, ts, reason, detail`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketpipe.bars import BAR_KEY
from marketpipe.processing._window import GroupWindow, group_bounds, group_codes, to_us
from marketpipe.providers.registry import source_priority as registry_priority

# the providers' dedupe priorities (their registry records): polygon, yahoo, replay, synthetic
DEFAULT_SOURCE_PRIORITY: tuple[str, ...] = registry_priority()
SPIKE = "spike"
UNIT_ERROR = "unit_error_100x"
ZERO_RANGE = "zero_range_volume"
REASONS: tuple[str, ...] = (SPIKE, UNIT_ERROR, ZERO_RANGE)
FLAG_COLUMNS: tuple[str, ...] = ("symbol", "interval", "ts", "reason", "detail")

# outlier_flags string for every combination of the three reason bits (spike=1, unit=2, zero=4)
_COMBOS = pd.Series(
    [",".join(r for bit, r in zip((1, 2, 4), REASONS, strict=True) if c & bit) for c in range(8)],
    dtype="str",
)


@dataclass(frozen=True)
class CleanResult:
    """Cleaned bars (with `outlier_flags`), one flag row per (bar, reason), duplicates removed."""

    bars: pd.DataFrame
    flags: pd.DataFrame
    duplicates_removed: int


def empty_flags() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": pd.Series(dtype="str"),
            "interval": pd.Series(dtype="str"),
            "ts": pd.Series(dtype="datetime64[us, UTC]"),
            "reason": pd.Series(dtype="str"),
            "detail": pd.Series(dtype="str"),
        }
    )


def dedupe_bars(
    bars: pd.DataFrame, source_priority: Sequence[str] | None = None
) -> tuple[pd.DataFrame, int]:
    """Sort by key and keep one row per `(symbol, interval, ts)`, best source first."""
    df, removed, _ = _dedupe(bars, source_priority)
    return df, removed


def _dedupe(bars: pd.DataFrame, source_priority: Sequence[str] | None):
    """`dedupe_bars` plus the surviving rows' `(symbol, interval)` group codes."""
    if source_priority is None:  # the registry's priorities, read now
        source_priority = registry_priority()
    if bars.empty:
        return bars.reset_index(drop=True), 0, np.zeros(0, dtype=np.int64)
    src_codes, sources = pd.factorize(bars["source"], use_na_sentinel=True)
    rank_of = {s: i for i, s in enumerate(source_priority)}
    ranks = np.array([rank_of.get(s, len(rank_of)) for s in sources] + [len(rank_of)])
    rank = ranks[src_codes]  # sentinel -1 (missing source) picks the trailing "unknown" rank
    codes = group_codes(bars, ["symbol", "interval"])
    ts = to_us(bars["ts"])
    order = np.lexsort((rank, ts, codes))
    codes, ts = codes[order], ts[order]
    dup = np.zeros(len(order), dtype=bool)
    dup[1:] = (codes[1:] == codes[:-1]) & (ts[1:] == ts[:-1])
    keep = order[~dup]
    if np.array_equal(keep, np.arange(len(bars))):
        return bars.reset_index(drop=True), 0, codes
    return bars.iloc[keep].reset_index(drop=True), int(dup.sum()), codes[~dup]


def clean_bars(
    bars: pd.DataFrame,
    source_priority: Sequence[str] | None = None,
    z: float = 6.0,
    window: int = 100,
    unit_window: int = 11,
) -> CleanResult:
    """De-duplicate and flag outliers; see the module docstring for the exact rules."""
    if window < 2 or unit_window < 3:
        raise ValueError("window must be >= 2 and unit_window >= 3")
    df, removed, codes = _dedupe(bars, source_priority)
    if df.empty:
        return CleanResult(df.assign(outlier_flags=pd.Series(dtype="str")), empty_flags(), removed)

    gstart, gend = group_bounds(codes)
    close = df["close"].to_numpy(dtype="float64")

    # unit errors: close vs the centred rolling median of its group
    half = unit_window // 2
    median = (
        pd.Series(close)
        .rolling(GroupWindow(gstart, gend, before=half, after=half), min_periods=1)
        .median()
        .to_numpy()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        lr10 = np.log10(close / median)
    unit = np.abs(np.abs(lr10) - 2.0) < 0.5
    fixed = np.where(unit, close / np.power(10.0, np.round(lr10)), close)

    # spikes: log return vs mean/std of the preceding `window` returns in the group
    idx = np.arange(len(df))
    prev = np.where(idx > gstart, np.roll(fixed, 1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.log(fixed / prev)
    roll = pd.Series(ret).rolling(
        GroupWindow(gstart, gend, before=window, after=-1), min_periods=max(2, window // 2)
    )
    mu, sd = roll.mean().to_numpy(), roll.std().to_numpy()
    dev = np.abs(ret - mu)
    with np.errstate(invalid="ignore"):
        spike = (sd > 0) & (dev > z * sd)

    high, low = df["high"].to_numpy(dtype="float64"), df["low"].to_numpy(dtype="float64")
    volume = df["volume"].to_numpy(dtype="float64")
    zero = (high == low) & (volume > 0)

    code = spike.astype(np.int8) + 2 * unit.astype(np.int8) + 4 * zero.astype(np.int8)
    df["outlier_flags"] = _COMBOS.take(code).array  # arrow take: no per-row Python objects

    parts = []
    for mask, reason, detail in (
        (spike, SPIKE, lambda i: f"log_ret={ret[i]:.6g} mean={mu[i]:.6g} std={sd[i]:.6g} z={z:g}"),
        (unit, UNIT_ERROR, lambda i: f"close={close[i]:.6g} neighbour_median={median[i]:.6g}"),
        (zero, ZERO_RANGE, lambda i: f"high=low={high[i]:.6g} volume={volume[i]:.6g}"),
    ):
        rows = np.flatnonzero(mask)
        if len(rows):
            part = df.iloc[rows][["symbol", "interval", "ts"]].copy()
            part["reason"] = reason
            part["detail"] = [detail(i) for i in rows]  # flagged rows only
            parts.append(part)
    if parts:
        flags = pd.concat(parts, ignore_index=True)
        flags = flags.sort_values([*BAR_KEY, "reason"], kind="mergesort").reset_index(drop=True)
        flags = flags.astype({"reason": "str", "detail": "str"})
    else:
        flags = empty_flags()
    return CleanResult(df, flags, removed)
