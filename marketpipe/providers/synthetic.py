"""Deterministic synthetic bars: an offline provider for tests, demos and benchmarks. No I/O.

Bars exist exactly at `marketpipe.calendar.expected_bar_starts` (XNYS regular sessions, early closes,
DST) and only once complete at `now`. Every random number is a pure function of
`(seed, symbol, interval, session, bar index, stream)` through a counter-based hash (splitmix64), so:

- the same seed and query give the identical frame, in any process (no Python `hash`);
- a sub-range query returns exactly the matching slice of a larger query (sessions are independent);
- generation is fully vectorised (no per-bar or per-session Python loop).

Each session opens at a smooth, symbol-specific price level and follows a log-normal random walk;
high/low wrap open and close, vwap lies inside [low, high], volume is U-shaped over the day.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from marketpipe.bars import INTERVAL_OFFSETS, INTERVALS, conform_bars, empty_bars
from marketpipe.calendar import bar_schedule, regular_session_minutes
from marketpipe.providers.base import BarsQuery, BaseProvider, FetchResult

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1
_DAILY_VOL = 0.015  # daily log-return standard deviation


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, element-wise on uint64 (wrapping arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _uniform(keys: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) per key, independent per `stream`."""
    bits = _mix(keys ^ np.uint64((stream * 0x632BE59BD9B4E019) & _MASK64))
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _normal_pair(keys: np.ndarray, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard normals per key (Box-Muller on two independent uniforms)."""
    radius = np.sqrt(-2.0 * np.log(1.0 - _uniform(keys, 2 * stream)))  # 1 - u is in (0, 1]
    angle = 2.0 * np.pi * _uniform(keys, 2 * stream + 1)
    return radius * np.cos(angle), radius * np.sin(angle)


def _exponential(keys: np.ndarray, stream: int) -> np.ndarray:
    """Exponential(1) per key."""
    return -np.log(1.0 - _uniform(keys, stream))


def symbol_key(symbol: str, seed: int) -> np.uint64:
    """Stable per-(symbol, seed) key: crc32 of the symbol, mixed with the seed."""
    raw = (zlib.crc32(symbol.encode("utf-8")) ^ ((seed & _MASK64) * 0x9E3779B1)) & _MASK64
    with np.errstate(over="ignore"):
        return _mix(np.array([raw], dtype=np.uint64))[0]


class SyntheticProvider(BaseProvider):
    """Random-walk OHLCV for any symbols, intervals 1m/5m/15m/1h/1d and date range.

    `now` (tz-aware) caps output at bars complete by then; default: wall clock at extract time.
    """

    def __init__(
        self,
        seed: int = 0,
        name: str = "synthetic",
        now: pd.Timestamp | None = None,
        exchange: str = "XNYS",
    ):
        self.seed = int(seed)
        self.name = name
        self.now = now
        self.exchange = exchange

    # ------------------------------------------------------------------ extract
    def extract(self, query: BarsQuery) -> dict[str, dict[str, np.ndarray]]:
        """Raw arrays per symbol: ts (int64 µs UTC), open, high, low, close, volume, vwap, trades."""
        schedule = bar_schedule(query.interval, query.start, query.end, self.exchange)
        now = pd.Timestamp.now(tz="UTC") if self.now is None else pd.Timestamp(self.now)
        # generate whole sessions, then cut: a session in progress is a prefix of the full one
        keep = (schedule["end"] <= now).to_numpy()
        return {
            symbol: {
                k: v[keep] for k, v in self._generate(symbol, query.interval, schedule).items()
            }
            for symbol in query.symbols
        }

    def _generate(
        self, symbol: str, interval: str, schedule: pd.DataFrame
    ) -> dict[str, np.ndarray]:
        n = len(schedule)
        ts = pd.DatetimeIndex(schedule["ts"]).as_unit("us").asi8
        if n == 0:
            empty = {k: np.zeros(0, dtype=np.float64) for k in _VALUE_COLUMNS}
            return empty | {"ts": ts, "trades": np.zeros(0, dtype=np.int64)}
        bar_index = schedule["bar_index"].to_numpy(dtype=np.int64)
        first = np.flatnonzero(bar_index == 0)
        counts = np.diff(np.append(first, n))
        session_label = pd.DatetimeIndex(schedule["session"].to_numpy()[first])
        session_day = session_label.as_unit("us").asi8 // 86_400_000_000  # days since 1970
        sym = symbol_key(symbol, self.seed)
        with np.errstate(over="ignore"):
            session_key = _mix(
                sym
                ^ _mix(session_day.astype(np.uint64) * np.uint64(64) + INTERVALS.index(interval))
            )
            bar_key = np.repeat(session_key, counts) + (bar_index.astype(np.uint64) + 1) * _GOLDEN

            level = self._session_level(sym, session_day, session_key)
            minutes = INTERVAL_OFFSETS[interval].total_seconds() / 60
            bars_per_day = 1.0 if interval == "1d" else regular_session_minutes() / minutes
            sigma = _DAILY_VOL / np.sqrt(bars_per_day)

            # random walk within each session: segmented cumulative sum of log returns
            ret_noise, volume_noise = _normal_pair(bar_key, 0)
            ret = ret_noise * sigma
            cum = np.cumsum(ret)
            cum -= np.repeat(cum[first] - ret[first], counts)
            open_level = np.repeat(level, counts)
            close = open_level * np.exp(cum)
            open_ = open_level * np.exp(cum - ret)
            top = np.maximum(open_, close) * np.exp(_exponential(bar_key, 4) * sigma * 0.5)
            bottom = np.minimum(open_, close) * np.exp(-_exponential(bar_key, 5) * sigma * 0.5)

            # U-shaped intraday volume around a symbol-specific daily volume
            position = (bar_index + 0.5) / np.repeat(counts, counts)
            u_shape = (1.0 + 2.0 * (2.0 * position - 1.0) ** 2) / (5.0 / 3.0)
            daily_volume = 10.0 ** (5.0 + float(sym % np.uint64(1000)) / 500.0)
            volume = (
                np.floor(daily_volume / bars_per_day * u_shape * np.exp(0.35 * volume_noise)) + 1.0
            )
            trade_size = 50.0 + 150.0 * _uniform(bar_key, 8)
            trades = np.maximum(1, np.rint(volume / trade_size)).astype(np.int64)

        # round to 1/10000: rounding is monotonic, so OHLC ordering and vwap bounds survive
        high, low = np.round(top, 4), np.round(bottom, 4)
        vwap = np.round(bottom + (top - bottom) * (0.25 + 0.5 * _uniform(bar_key, 9)), 4)
        return {
            "ts": ts,
            "open": np.round(open_, 4),
            "high": high,
            "low": low,
            "close": np.round(close, 4),
            "volume": volume,
            "vwap": np.clip(vwap, low, high),
            "trades": trades,
        }

    @staticmethod
    def _session_level(sym: np.uint64, day: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Opening price per session: a smooth symbol-specific path plus a small overnight gap."""
        base = 20.0 + float(sym % np.uint64(480))
        phase = float(sym % np.uint64(6283)) / 1000.0
        trend = 0.25 * np.sin(2 * np.pi * day / 730.0 + phase) + 0.08 * np.sin(
            2 * np.pi * day / 61.0 + 2 * phase
        )
        return base * np.exp(trend + 0.01 * _normal_pair(key, 7)[0])

    # ------------------------------------------------------------------ transform
    def transform(self, raw: dict[str, dict[str, np.ndarray]], query: BarsQuery) -> FetchResult:
        symbols = list(raw)
        counts = np.array([len(raw[s]["ts"]) for s in symbols], dtype=np.int64)
        empty_symbols = [s for s, c in zip(symbols, counts, strict=True) if c == 0]
        if counts.sum() == 0:
            return FetchResult(bars=empty_bars(), empty_symbols=empty_symbols, requests=0)
        columns = {k: np.concatenate([raw[s][k] for s in symbols]) for k in _VALUE_COLUMNS}
        total = int(counts.sum())
        frame = pd.DataFrame(
            {
                "symbol": pd.Categorical.from_codes(
                    np.repeat(np.arange(len(symbols)), counts), categories=symbols
                ),
                "interval": pd.Categorical.from_codes(
                    np.zeros(total, dtype=np.int8), categories=[query.interval]
                ),
                "ts": pd.DatetimeIndex(columns.pop("ts").astype("datetime64[us]"), tz="UTC"),
                **columns,
                "source": pd.Categorical.from_codes(
                    np.zeros(total, dtype=np.int8), categories=[self.name]
                ),
            }
        )
        return FetchResult(bars=conform_bars(frame), empty_symbols=empty_symbols, requests=0)


_VALUE_COLUMNS = ("ts", "open", "high", "low", "close", "volume", "vwap", "trades")
