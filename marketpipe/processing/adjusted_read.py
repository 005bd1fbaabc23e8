"""The one adjusted read: stored raw bars, back-adjusted for splits and dividends (CRSP style).

`read_bars(stores, …, adjusted=True)` serves `marketpipe read --adjusted`, the Python API and
(through `adjust_stored`) the processing stage, so every path gives the same numbers for the
same bar. Storage stays raw and never imports this layer: `marketpipe.storage.read` gives the
raw hot ∪ cold union, this module adjusts it.

A dividend's factor is measured against the raw close of the session just before its ex-date
(`adjust`), so for each cash dividend after the window that one session's bars are read too
(`processing.history.dividend_reference_bars`), then trimmed away; splits need no bars.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd

from marketpipe.processing.adjust import adjust_bars
from marketpipe.processing.history import dividend_reference_bars
from marketpipe.storage import Stores
from marketpipe.storage import read as raw_read
from marketpipe.symbols import validate_symbol

__all__ = ["adjust_stored", "read_adjusted", "read_bars"]


def adjust_stored(
    stores: Stores,
    bars: pd.DataFrame,
    actions: pd.DataFrame,
    symbols: list[str],
    interval: str,
    hi: pd.Timestamp | None,
) -> pd.DataFrame:
    """Back-adjust `bars` (stored bars of `symbols` with `ts < hi`) with `actions`.

    Raw bars of the session before each cash dividend at or after `hi` are read so its factor sees
    that close; they are dropped again before returning.
    """
    if actions.empty:
        return bars
    frame = bars
    if hi is not None:

        def read(syms: list[str], lo: date, up: date) -> pd.DataFrame:
            return raw_read.read_bars(stores, syms, lo, up, interval)

        extra = dividend_reference_bars(read, actions, symbols, hi.date())
        if extra is not None:  # only bars after `bars` (an `hi` inside a day must not repeat any)
            extra = extra.loc[extra["ts"] >= hi]
            frame = pd.concat([bars, extra], ignore_index=True) if len(bars) else extra
    adjusted = adjust_bars(frame, actions)
    if hi is not None:
        adjusted = adjusted.loc[adjusted["ts"] < hi]
    return adjusted.reset_index(drop=True)


def read_adjusted(
    stores: Stores,
    symbols: Iterable[str],
    start: date | str | pd.Timestamp | None,
    end: date | str | pd.Timestamp | None,
    interval: str,
    as_of: date | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Bars with `start <= ts < end` from both tiers, back-adjusted (prices stay raw in storage).
    `as_of`: the bars as known then (corporate actions as stored now)."""
    syms = [validate_symbol(s) for s in symbols]
    hi = raw_read.to_utc(end)
    raw = raw_read.read_bars(stores, syms, start, end, interval, as_of=as_of)
    return adjust_stored(stores, raw, stores.hot.read_corporate_actions(syms), syms, interval, hi)


def read_bars(
    stores: Stores,
    symbols: Iterable[str],
    start: date | str | pd.Timestamp | None,
    end: date | str | pd.Timestamp | None,
    interval: str,
    adjusted: bool = False,
    as_of: date | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """`marketpipe.storage.read.read_bars`, or `read_adjusted` with `adjusted=True`; `as_of`
    returns the data as known at that instant."""
    if adjusted:
        return read_adjusted(stores, symbols, start, end, interval, as_of=as_of)
    return raw_read.read_bars(stores, symbols, start, end, interval, as_of=as_of)
