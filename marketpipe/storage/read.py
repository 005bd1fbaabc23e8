"""`read_bars`: one frame from hot ∪ cold, raw prices, optionally as of an instant.

Where a key is in both tiers the copy with the newer `ingested_at` wins (hot wins on ties): a
correction routed to the lake after its row aged out of the hot window is not hidden by the older
hot copy. `as_of=T` reads the lake version current at T and the hot rows ingested at or before T.
Back-adjusted reads live one layer up (`marketpipe.processing.adjusted_read`): storage never
imports processing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd

from marketpipe.bars import BAR_COLUMNS, BAR_KEY, conform_bars, empty_bars
from marketpipe.storage import Stores
from marketpipe.symbols import validate_symbol


def to_utc(value: date | str | pd.Timestamp | None) -> pd.Timestamp | None:
    """A date/str/Timestamp as a tz-aware UTC Timestamp (naive values are taken as UTC)."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def union_hot_wins(cold: pd.DataFrame, hot: pd.DataFrame) -> pd.DataFrame:
    """Concatenate tiers; where a key is in both, keep the newer copy by `ingested_at` when
    both frames carry it (hot wins on ties and when either lacks it)."""
    frames = [f for f in (cold, hot) if not f.empty]
    if not frames:
        return empty_bars()
    if len(frames) == 1:
        return conform_bars(frames[0].sort_values(["symbol", "ts"], kind="stable"))
    both = pd.concat([cold.assign(_tier=0), hot.assign(_tier=1)], ignore_index=True)
    order = ["symbol", "interval", "ts", "_tier"]
    if "ingested_at" in cold.columns and "ingested_at" in hot.columns:
        both["_ing"] = pd.to_datetime(both["ingested_at"], utc=True).fillna(
            pd.Timestamp.min.tz_localize("UTC")
        )
        order = ["symbol", "interval", "ts", "_ing", "_tier"]
    both = both.sort_values(order, kind="stable").drop_duplicates(list(BAR_KEY), keep="last")
    return conform_bars(both[list(BAR_COLUMNS)].sort_values(["symbol", "ts"], kind="stable"))


def read_tiers(stores: Stores, syms, interval, lo, hi, as_of=None) -> pd.DataFrame:
    """Raw bars of both tiers (newer copy of a key wins), optionally as of `as_of`."""
    as_of = to_utc(as_of)
    cold = stores.cold.read_bars(syms, interval, lo, hi, as_of=as_of, with_ingested_at=True)
    hot = stores.hot.read_bars(syms, interval, lo, hi, as_of=as_of, with_ingested_at=True)
    return union_hot_wins(cold, hot)


def read_bars(
    stores: Stores,
    symbols: Iterable[str],
    start: date | str | pd.Timestamp | None,
    end: date | str | pd.Timestamp | None,
    interval: str,
    as_of: date | str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Bars with `start <= ts < end` for the symbols, from both tiers.

    Prices are raw; `marketpipe.processing.adjusted_read.read_bars(…, adjusted=True)` adjusts.
    `as_of` returns the data as it was known then.
    """
    syms = [validate_symbol(s) for s in symbols]
    lo, hi = to_utc(start), to_utc(end)
    return read_tiers(stores, syms, interval, lo, hi, as_of)
