"""`read_bars`: one frame from hot ∪ cold, hot wins on overlap, raw or adjusted."""

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
    adjusted: bool = False,
) -> pd.DataFrame:
    """Bars with `start <= ts < end` for the symbols, from both tiers (hot wins on overlap).

    `adjusted=True` applies split and dividend back-adjustment from `corporate_actions` (CRSP
    style, see `marketpipe.processing.adjust`); stored prices stay raw.
    """
    syms = [validate_symbol(s) for s in symbols]
    lo, hi = to_utc(start), to_utc(end)
    if adjusted:
        return _read_adjusted(stores, syms, lo, hi, interval)
    cold = stores.cold.read_bars(syms, interval, lo, hi)
    hot = stores.hot.read_bars(syms, interval, lo, hi)
    return union_hot_wins(cold, hot)


def _read_adjusted(stores: Stores, syms, lo, hi, interval) -> pd.DataFrame:
    from marketpipe.processing.adjust import adjust_bars

    actions = stores.hot.read_corporate_actions(syms)
    # factors need the bars up to the last action (close before each ex-date), so read through it
    hi_needed = hi
    if hi is not None and not actions.empty:
        last_action = to_utc(pd.Timestamp(actions["ex_date"].max())) + pd.Timedelta(days=1)
        hi_needed = max(hi, last_action)
    raw = union_hot_wins(
        stores.cold.read_bars(syms, interval, lo, hi_needed),
        stores.hot.read_bars(syms, interval, lo, hi_needed),
    )
    adj = adjust_bars(raw, actions)
    if hi is not None:
        adj = adj.loc[adj["ts"] < hi]
    return adj.reset_index(drop=True)
