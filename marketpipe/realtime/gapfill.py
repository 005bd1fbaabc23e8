"""Outage bookkeeping and REST repair for the session (gap fill and reconciliation).

An outage opens at a disconnect (start = event time of the last tick received) and ends when data
flows again after a reconnect. It is filled once the windows it touches are closed, so the REST
bars fetched then are final and no streamed revision can overwrite them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from marketpipe.bars import conform_bars
from marketpipe.realtime.aggregator import BarRow

# rest_backfill(symbols, start_ts, end_ts) -> bars at the session's bar window whose start is in
# [start_ts, end_ts] (both UTC, inclusive)
RestBackfill = Callable[[Sequence[str], pd.Timestamp, pd.Timestamp], pd.DataFrame]


@dataclass
class Gap:
    start_ns: int  # event time of the last tick before the outage
    end_ns: int | None = None  # when data flowed again (None: not yet)


class GapTracker:
    """Thread-safe: the producer opens/closes outages, the consumer takes those ready to fill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gaps: list[Gap] = []

    def open(self, start_ns: int) -> None:
        with self._lock:
            if not self._gaps or self._gaps[-1].end_ns is not None:
                self._gaps.append(Gap(start_ns))

    def data_resumed(self, at_ns: int) -> None:
        with self._lock:
            if self._gaps and self._gaps[-1].end_ns is None:
                self._gaps[-1].end_ns = at_ns

    def take_ready(
        self, watermark: int | None, window_ns: int, force_end: int | None = None
    ) -> list[Gap]:
        """Outages whose last window is closed; with `force_end` (session end) all of them."""
        with self._lock:
            ready = []
            for g in self._gaps:
                if force_end is not None and g.end_ns is None:
                    g.end_ns = force_end
                if g.end_ns is None:
                    continue
                if force_end is not None or (
                    watermark is not None
                    and watermark >= g.end_ns - g.end_ns % window_ns + window_ns
                ):
                    ready.append(g)
            self._gaps = [g for g in self._gaps if g not in ready]
            return ready


def fetch_rest_bars(
    rest_backfill: RestBackfill,
    symbols: Sequence[str],
    interval: str,
    window_ns: int,
    start_ns: int,
    end_ns: int,
) -> pd.DataFrame:
    """REST bars for the windows touching [start_ns, end_ns], conformed to canonical bars."""
    start = pd.Timestamp(start_ns - start_ns % window_ns, unit="ns", tz="UTC")
    end = pd.Timestamp(end_ns - end_ns % window_ns, unit="ns", tz="UTC")
    bars = conform_bars(rest_backfill(tuple(symbols), start, end))
    keep = (bars["interval"] == interval) & (bars["ts"] >= start) & (bars["ts"] <= end)
    return bars[keep].reset_index(drop=True)


def bar_rows(bars: pd.DataFrame) -> dict[tuple[str, int], BarRow]:
    """Canonical bars as aggregator rows keyed by (symbol, ts ns) -- for reconciliation.

    Built column-wise (each column converted once, rows zipped in C), not row by row."""
    if len(bars) == 0:
        return {}
    ts_ns = bars["ts"].astype("datetime64[ns, UTC]").astype("int64").tolist()
    symbols = bars["symbol"].astype(str).tolist()
    trades = bars["trades"].astype(object).where(bars["trades"].notna(), None)
    cols = [bars[c].astype("float64").tolist() for c in ("open", "high", "low", "close", "volume")]
    vwap = bars["vwap"].astype(object).where(bars["vwap"].notna(), None).tolist()
    trades_list = (
        [None if t is None else int(t) for t in trades.tolist()]
        if trades.notna().any()
        else [None] * len(bars)
    )
    rows = zip(symbols, ts_ns, *cols, vwap, trades_list, strict=True)
    return dict(zip(zip(symbols, ts_ns, strict=True), rows, strict=True))
