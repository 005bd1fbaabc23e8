"""`read_bars`: one frame from hot ∪ cold, hot wins on overlap, raw prices.

Back-adjusted reads live one layer up (`marketpipe.processing.adjusted_read`): storage never
imports processing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd

from marketpipe.bars import BAR_KEY, conform_bars, empty_bars
from marketpipe.storage import Stores
from marketpipe.symbols import validate_symbol


def to_utc(value: date | str | pd.Timestamp | None) -> pd.Timestamp | None:
    """A date/str/Timestamp as a tz-aware UTC Timestamp (naive values are taken as UTC)."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def union_hot_wins(cold: pd.DataFrame, hot: pd.DataFrame) -> pd.DataFrame:
    """Concatenate tiers; where a key is in both, keep the hot row."""
    frames = [f for f in (cold, hot) if not f.empty]
    if not frames:
        return empty_bars()
    both = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    both = both.drop_duplicates(list(BAR_KEY), keep="last")
    return conform_bars(both.sort_values(["symbol", "ts"], kind="stable"))


def read_bars(
    stores: Stores,
    symbols: Iterable[str],
    start: date | str | pd.Timestamp | None,
    end: date | str | pd.Timestamp | None,
    interval: str,
) -> pd.DataFrame:
    """Bars with `start <= ts < end` for the symbols, from both tiers (hot wins on overlap).

    Prices are raw; `marketpipe.processing.adjusted_read.read_bars(…, adjusted=True)` adjusts.
    """
    syms = [validate_symbol(s) for s in symbols]
    lo, hi = to_utc(start), to_utc(end)
    cold = stores.cold.read_bars(syms, interval, lo, hi)
    hot = stores.hot.read_bars(syms, interval, lo, hi)
    return union_hot_wins(cold, hot)
