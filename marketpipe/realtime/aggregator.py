"""Tick -> bar aggregation with event-time windows and allowed lateness, and micro-batching.

Watermark = newest event time seen (all symbols) - `allowed_lateness`. A window `[w, w+bar)` is
*closed* once the watermark reaches `w + bar`; a tick for a closed window is *late* (quarantined
with reason `late`). A tick for a window that was already flushed but is not closed yet revises
the bar, which is emitted again (the sink upserts on `(symbol, interval, ts)`).
Open bars are emitted on every flush (a real-time view); closed bars leave memory.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from marketpipe.bars import (
    BAR_COLUMNS,
    QUARANTINE_COLUMNS,
    TS_DTYPE,
    empty_bars,
    session_column,
)
from marketpipe.errors import ConfigError
from marketpipe.realtime.ticks import Tick

# (symbol, window start ns, open, high, low, close, volume, vwap, trades)
BarRow = tuple[str, int, float, float, float, float, float, float, int]


def interval_label(bar_window: timedelta) -> str:
    secs = int(bar_window.total_seconds())
    return "1m" if secs == 60 else f"{secs}s"


def check_window(bar_window: timedelta) -> int:
    """Validate a bar window (1 s ... 1 min, dividing a minute); return it in ns."""
    secs = bar_window.total_seconds()
    if secs != int(secs) or not 1 <= secs <= 60 or 60 % int(secs):
        raise ConfigError(
            f"bar_window must be whole seconds in 1s..1m dividing 60s (got {bar_window})"
        )
    return int(secs) * 1_000_000_000


class BarAggregator:
    def __init__(
        self, bar_window: timedelta, allowed_lateness: timedelta, source: str = "realtime"
    ):
        self.window_ns = check_window(bar_window)
        if allowed_lateness < timedelta(0):
            raise ConfigError(f"allowed_lateness must be >= 0 (got {allowed_lateness})")
        self.lateness_ns = int(allowed_lateness.total_seconds() * 1e9)
        self.interval = interval_label(bar_window)
        self.source = source
        # bar state: [symbol, window start, open, high, low, close, volume, price*volume,
        #             trades, first ts, last ts, dirty]
        self._bars: dict[tuple[str, int], list] = {}
        self._current: dict[str, list] = {}  # symbol -> its newest bar (fast path)
        self._dirty: list[list] = []
        self._late: list[Tick] = []
        self.max_ts: int | None = None
        self.aggregated = 0
        self.late = 0

    @property
    def watermark(self) -> int | None:
        return None if self.max_ts is None else self.max_ts - self.lateness_ns

    def add(self, tick: Tick) -> bool:
        """Aggregate one tick; False when it was late (kept for quarantine)."""
        return self.add_many((tick,)) == 0

    def add_many(self, ticks) -> int:
        """Aggregate ticks (Ticks or tuples in Tick field order) in arrival order; returns late count."""
        win, lateness = self.window_ns, self.lateness_ns
        max_ts = self.max_ts if self.max_ts is not None else -(1 << 62)
        bars, current, dirty, late = self._bars, self._current, self._dirty, self._late
        n_late = 0
        n = 0
        for t in ticks:
            n += 1
            sym, ts, p, s, _ = t
            w = ts - ts % win
            if ts > max_ts:
                max_ts = ts
            elif w + win <= max_ts - lateness:
                n_late += 1
                late.append(t)
                continue
            b = current.get(sym)
            if b is None or b[1] != w:
                b = bars.get((sym, w))
                if b is None:
                    b = [sym, w, p, p, p, p, s, p * s, 1, ts, ts, True]
                    bars[(sym, w)] = b
                    dirty.append(b)
                    if w >= current.get(sym, b)[1]:
                        current[sym] = b
                    continue
            if p > b[3]:
                b[3] = p
            elif p < b[4]:
                b[4] = p
            if ts < b[9]:
                b[9] = ts
                b[2] = p
            if ts >= b[10]:
                b[10] = ts
                b[5] = p
            b[6] += s
            b[7] += p * s
            b[8] += 1
            if not b[11]:
                b[11] = True
                dirty.append(b)
        self.max_ts = max_ts
        self.aggregated += n - n_late
        self.late += n_late
        return n_late

    def take(self, final: bool = False) -> tuple[list[BarRow], list[Tick]]:
        """Bars changed since the last call, and late ticks; closed bars leave memory.

        `final=True` (session end) releases every bar, open or not.
        """
        rows: list[BarRow] = []
        for b in self._dirty:
            b[11] = False
            vwap = b[7] / b[6] if b[6] else math.nan
            rows.append((b[0], b[1], b[2], b[3], b[4], b[5], b[6], vwap, b[8]))
        self._dirty = []
        if final:
            self._bars.clear()
            self._current.clear()
        elif self.max_ts is not None:
            edge = self.max_ts - self.lateness_ns - self.window_ns
            for key in [k for k in self._bars if k[1] <= edge]:
                b = self._bars.pop(key)
                if self._current.get(key[0]) is b:
                    del self._current[key[0]]
        late, self._late = self._late, []
        return rows, late

    @property
    def open_bars(self) -> int:
        return len(self._bars)


def rows_to_bars(rows: list[BarRow], interval: str, source: str) -> pd.DataFrame:
    """Canonical bars frame (marketpipe.bars) from aggregator rows."""
    if not rows:
        return empty_bars()
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    ts = pd.Series(
        pd.to_datetime(np.asarray(cols[1], dtype="int64"), unit="ns", utc=True).astype(TS_DTYPE)
    )
    df = pd.DataFrame(
        {
            "symbol": pd.Series(cols[0], dtype="str"),
            "interval": pd.Series([interval] * n, dtype="str"),
            "ts": ts,
            "session": session_column(ts, interval),
            "open": np.asarray(cols[2], dtype="float64"),
            "high": np.asarray(cols[3], dtype="float64"),
            "low": np.asarray(cols[4], dtype="float64"),
            "close": np.asarray(cols[5], dtype="float64"),
            "volume": np.asarray(cols[6], dtype="float64"),
            "vwap": np.asarray(cols[7], dtype="float64"),
            "trades": pd.array(cols[8], dtype="Int64"),
            "source": pd.Series([source] * n, dtype="str"),
        }
    )
    return df[list(BAR_COLUMNS)]


def late_quarantine(
    ticks: list[Tick], *, window_ns: int, lateness_ns: int, interval: str, run_id: str
) -> pd.DataFrame:
    """Quarantine rows (reason `late`) for ticks past allowed lateness; `ts` = their bar start."""
    now = datetime.now(UTC)
    records = []
    for t in map(Tick._make, ticks):
        w = t.ts - t.ts % window_ns
        records.append(
            {
                "symbol": t.symbol,
                "interval": interval,
                "ts": pd.Timestamp(w, unit="ns", tz="UTC"),
                "source": t.source,
                "reason": "late",
                "detail": f"tick for bar {pd.Timestamp(w, unit='ns', tz='UTC').isoformat()} "
                f"arrived after the window closed (allowed lateness {lateness_ns / 1e9:g}s)",
                "payload": t.to_json(),
                "run_id": run_id,
                "quarantined_at": now,
            }
        )
    df = pd.DataFrame(records, columns=list(QUARANTINE_COLUMNS))
    return df.astype({"ts": TS_DTYPE, "quarantined_at": TS_DTYPE})


class MicroBatcher:
    """Decides when to flush: `batch_size` ticks pending or `flush_ms` since the first pending one.

    Holds the receive instants of pending tick batches so the session can measure
    tick -> commit latency for every tick.
    """

    def __init__(self, batch_size: int, flush_ms: float, clock=time.monotonic):
        if batch_size < 1 or flush_ms <= 0:
            raise ConfigError("batch_size must be >= 1 and flush_ms > 0")
        self.batch_size = batch_size
        self.flush_s = flush_ms / 1000.0
        self._clock = clock
        self._recv: list[float] = []
        self._counts: list[int] = []
        self.pending = 0
        self._first_at: float | None = None

    def add(self, recv: float, count: int = 1) -> None:
        if self._first_at is None:
            self._first_at = self._clock()
        self._recv.append(recv)
        self._counts.append(count)
        self.pending += count

    def due(self) -> bool:
        if self._first_at is None:
            return False
        return self.pending >= self.batch_size or self._clock() - self._first_at >= self.flush_s

    def time_left(self) -> float:
        """Seconds until the time-based flush is due (flush_ms when nothing is pending)."""
        if self._first_at is None:
            return self.flush_s
        return max(0.0, self.flush_s - (self._clock() - self._first_at))

    def take(self) -> np.ndarray:
        """Receive instants of every pending tick (one entry per tick); resets the batch."""
        recv = np.repeat(np.asarray(self._recv, dtype="float64"), self._counts)
        self._recv, self._counts, self.pending, self._first_at = [], [], 0, None
        return recv
