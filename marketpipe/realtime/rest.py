"""REST counterparts of the tick sources, for hybrid mode's gap fill and end-of-session reconcile.

`rest_backfill(symbols, start, end)` returns canonical bars at the session's bar window whose start
lies in [start, end] (see `RealtimeSession`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pandas as pd

from marketpipe.bars import conform_bars, empty_bars
from marketpipe.calendar import exchange_date
from marketpipe.errors import ConfigError
from marketpipe.realtime.aggregator import interval_label
from marketpipe.realtime.sources import SyntheticTickSource

RestBackfill = Callable[[tuple[str, ...], pd.Timestamp, pd.Timestamp], pd.DataFrame]


def ticks_to_bars(ticks: pd.DataFrame, bar_window: timedelta, source: str) -> pd.DataFrame:
    """Canonical bars from a tick frame (`symbol, ts, price, size`): OHLC, volume, VWAP, trades."""
    if ticks.empty:
        return empty_bars()
    window = pd.Timedelta(bar_window)
    t = ticks.assign(start=ticks["ts"].dt.floor(window), pv=ticks["price"] * ticks["size"])
    t = t.sort_values(["symbol", "ts"], kind="stable")
    g = t.groupby(["symbol", "start"], sort=True)
    bars = g.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        pv=("pv", "sum"),
        trades=("price", "size"),
    ).reset_index()
    bars["vwap"] = bars["pv"] / bars["volume"]
    bars = bars.rename(columns={"start": "ts"}).drop(columns="pv")
    bars["interval"] = interval_label(bar_window)
    bars["source"] = source
    return conform_bars(bars)


def synthetic_rest(source: SyntheticTickSource, bar_window: timedelta) -> RestBackfill:
    """Replays the seeded tick stream from its start and aggregates the requested window."""

    def fetch(symbols, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        if source.start_ns is None:
            return empty_bars()
        replay = SyntheticTickSource(
            source.symbols,
            source.ticks_per_sec,
            source.seed,
            start=pd.Timestamp(source.start_ns, unit="ns", tz="UTC"),
            paced=False,
        )
        # the "provider" has every trade that happened up to the end of the window, and no later
        # than the last trade the feed produced (a REST API cannot know the future)
        until_ns = (pd.Timestamp(end) + pd.Timedelta(bar_window)).value
        if source.last_tick_ts is not None:
            until_ns = min(until_ns, source.last_tick_ts + 1)
        n = max(0, int((until_ns - source.start_ns) * source.ticks_per_sec / 1e9) + 1)
        ticks = pd.DataFrame(replay.take(n), columns=["symbol", "ts", "price", "size", "source"])
        ticks = ticks.loc[ticks["ts"] < until_ns]
        ticks["ts"] = pd.to_datetime(ticks["ts"], unit="ns", utc=True)
        bars = ticks_to_bars(ticks.loc[ticks["symbol"].isin(symbols)], bar_window, source.name)
        return bars.loc[(bars["ts"] >= start) & (bars["ts"] <= end)].reset_index(drop=True)

    return fetch


def polygon_rest(provider, bar_window: timedelta) -> RestBackfill:
    """Minute aggregates over Polygon REST (through the rate-limited adapter) for 1-minute windows."""
    if bar_window != timedelta(minutes=1):
        raise ConfigError("hybrid mode with Polygon REST needs --bar-window 60 (minute aggregates)")
    from marketpipe.providers.base import BarsQuery

    def fetch(symbols, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        first, last = exchange_date(start), exchange_date(end)
        result = provider.fetch(
            BarsQuery(symbols=tuple(symbols), interval="1m", start=first, end=last)
        )
        bars = result.bars
        return bars.loc[(bars["ts"] >= start) & (bars["ts"] <= end)].reset_index(drop=True)

    return fetch
