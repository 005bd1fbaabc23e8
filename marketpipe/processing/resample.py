"""Session-aware resampling of intraday bars (any interval finer than the target) to 5m/15m/1h/1d.

Conventions
-----------
* Each bar belongs to the XNYS session of its exchange-local (America/New_York) date. Bars outside
  that session's regular hours `[open, close)` (pre/post-market, holidays, weekends) are not part of
  any output bar.
* Intraday bins are aligned to the session open and never cross sessions: the bin start is
  `open + floor((ts - open) / step) * step`. The arithmetic is done on UTC instants measured from
  that day's open, which is the same as grouping in exchange time (a session never spans a DST
  switch) and converting the starts back to UTC: 09:30 ET is 14:30 UTC in winter, 13:30 UTC in
  summer. The last bin of a session may be shorter (1h: 15:30-16:00; early close 13:00: 12:30-13:00).
* Daily bars: `ts` = session date at 00:00 UTC; early closes are simply shorter sessions.
* Aggregation per bin: first open, max high, min low, last close, summed volume, summed trades
  (null when every input is null), VWAP = `sum(vwap * volume) / sum(volume)` where a missing bar
  vwap falls back to the typical price `(high + low + close) / 3`; with zero total volume, the
  plain mean of those per-bar values. `source` is the first input bar's source; `interval` = `to`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketpipe.bars import INTERVAL_OFFSETS, conform_bars, empty_bars, interval_offset
from marketpipe.calendar import session_labels as session_dates
from marketpipe.calendar import session_schedule as schedule
from marketpipe.processing._window import to_us

TARGETS: tuple[str, ...] = ("5m", "15m", "1h", "1d")


def session_bins(ts: pd.Series, to: str) -> tuple[np.ndarray, np.ndarray]:
    """For UTC bar starts `ts`: (in-session mask, output bar start as int64 microseconds UTC)."""
    dates = session_dates(ts, "1m")
    sched = schedule(dates.min(), dates.max())
    opens = sched["open"].reindex(dates.to_numpy())
    closes = sched["close"].reindex(dates.to_numpy())
    t, o, c = to_us(ts), to_us(opens), to_us(closes)
    valid = opens.notna().to_numpy()
    inside = valid & (t >= o) & (t < c)
    if to == "1d":
        bins = to_us(dates)
    else:
        step = INTERVAL_OFFSETS[to] // pd.Timedelta(microseconds=1)
        bins = o + ((t - o) // step) * step
    return inside, bins


def resample_bars(bars: pd.DataFrame, to: str) -> pd.DataFrame:
    """Aggregate intraday `bars` (one input interval, finer than `to`) into `to` bars."""
    if to not in TARGETS:
        raise ValueError(f"cannot resample to {to!r}; choose one of {', '.join(TARGETS)}")
    if bars.empty:
        return empty_bars()
    intervals = set(bars["interval"].unique())
    if len(intervals) != 1:
        raise ValueError(f"resample one input interval at a time, got {sorted(intervals)}")
    src = intervals.pop()
    try:  # any intraday source finer than `to`: 1s..30s, 1m, 5m, a vendor's 30m, ...
        finer = src != "1d" and interval_offset(src) < INTERVAL_OFFSETS[to]
    except ValueError:
        finer = False
    if not finer:
        raise ValueError(f"cannot resample {src!r} bars to {to!r}")

    df = bars.sort_values(["symbol", "ts"], kind="mergesort")
    inside, bins = session_bins(df["ts"], to)
    df = df.loc[inside]
    bins = bins[inside]
    if df.empty:
        return empty_bars()

    high, low, close = df["high"], df["low"], df["close"]
    vwap = df["vwap"] if "vwap" in df.columns else pd.Series(np.nan, index=df.index)
    per_bar = vwap.astype("float64").fillna((high + low + close) / 3.0)
    volume = df["volume"].astype("float64")
    work = pd.DataFrame(
        {
            "symbol": df["symbol"],
            "bin": bins,
            "open": df["open"],
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "pv": per_bar * volume,
            "pb": per_bar,
            "trades": df["trades"] if "trades" in df.columns else pd.NA,
            "source": df["source"],
        }
    )
    g = work.groupby(["symbol", "bin"], sort=True, observed=True)
    out = g.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        pv=("pv", "sum"),
        pb=("pb", "mean"),
        source=("source", "first"),
    )
    out["trades"] = g["trades"].sum(min_count=1).astype("Int64")
    vol = out["volume"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["vwap"] = np.where(vol > 0, out["pv"].to_numpy() / vol, out["pb"].to_numpy())
    out = out.reset_index()
    out["ts"] = pd.to_datetime(out["bin"].to_numpy(), unit="us", utc=True)
    out["interval"] = to
    return conform_bars(out)  # canonical columns (session derived from ts)
