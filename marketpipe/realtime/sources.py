"""Tick sources: a deterministic synthetic generator and Polygon's websocket (via `polygon`).

A source's `run(queue, stop, on_connected=None, on_bar=None) -> SourceEnd` streams into the queue
until the connection ends and returns *why* (`disconnected` with the last tick's event time,
`exhausted`, `stopped`) -- a disconnect is never silent. Reconnecting is the session's job, so
each `run` is one connection. Polygon field names stay inside this module.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import numpy as np
from pydantic import SecretStr

from marketpipe.errors import ConfigError, FatalError
from marketpipe.realtime.queue import BoundedTickQueue
from marketpipe.realtime.ticks import SourceEnd, Tick, now_ns, to_ns

_CHUNK = 1000
_repeat = itertools.repeat

OnConnected = Callable[[int], None]  # data flows on this connection; the instant (ns, UTC)
OnBar = Callable[[dict], None]  # a vendor minute bar, canonical field names, ts in ns


class TickSource(Protocol):
    """What `RealtimeSession` needs from a source."""

    name: str
    symbols: tuple[str, ...]

    def run(
        self,
        queue: BoundedTickQueue,
        stop: threading.Event,
        on_connected: OnConnected | None = None,
        on_bar: OnBar | None = None,
    ) -> SourceEnd:
        """Stream one connection's ticks into `queue` until it ends, `stop` is set or the source
        is exhausted; say which. Raise `FatalError` for what reconnecting cannot fix."""
        ...


class SyntheticTickSource:
    """Seeded random-walk trades; tick i has event time `start + i / ticks_per_sec`.

    `paced=True` emits each tick at its event time (start defaults to now: live-like);
    `paced=False` emits as fast as possible (benchmarks). `limit` ends the stream
    (`exhausted`). `block_when_full` makes the producer wait for queue room instead of dropping
    (a synthetic source can be paused; a real feed cannot).
    """

    name = "synthetic"

    def __init__(
        self,
        symbols: Sequence[str],
        ticks_per_sec: float,
        seed: int,
        start: datetime | None = None,
        *,
        paced: bool = True,
        limit: int | None = None,
        block_when_full: bool = False,
    ):
        if not symbols:
            raise ConfigError("SyntheticTickSource needs at least one symbol")
        if ticks_per_sec <= 0:
            raise ConfigError(f"ticks_per_sec must be > 0 (got {ticks_per_sec})")
        self.symbols = tuple(symbols)
        self.ticks_per_sec = float(ticks_per_sec)
        self.seed = seed
        self.start_ns = None if start is None else to_ns(start)
        self.paced = paced
        self.limit = limit
        self.block_when_full = block_when_full
        self._step_ns = 1e9 / self.ticks_per_sec
        self._next = 0  # index of the next tick to emit
        self._prices = 100.0 + 10.0 * np.arange(len(self.symbols), dtype="float64")
        self._buffer: list[Tick] = []
        self._chunk_no = 0
        self._rng = np.random.default_rng(seed)
        self.last_tick_ts: int | None = None

    def _generate_chunk(self) -> list[tuple]:
        rng = self._rng
        self._chunk_no += 1
        base = self._chunk_no * _CHUNK - _CHUNK
        n_sym = len(self.symbols)
        idx = rng.integers(0, n_sym, _CHUNK)
        rets = rng.normal(0.0, 0.0005, _CHUNK)
        sizes = rng.integers(1, 500, _CHUNK).astype("float64")
        # per-symbol random walk, vectorised: cumulative returns within each symbol's segment
        order = np.argsort(idx, kind="stable")
        counts = np.bincount(idx, minlength=n_sym)
        cs = np.cumsum(rets[order])
        ends = np.cumsum(counts)
        before = np.concatenate(([0.0], cs))[ends - counts]  # cumsum before each segment
        log_p = np.log(self._prices)[idx[order]] + cs - np.repeat(before, counts)
        prices = np.empty(_CHUNK)
        prices[order] = np.round(np.exp(log_p), 4)
        has = counts > 0
        self._prices[has] = np.exp(log_p[ends[has] - 1])
        offsets = (np.arange(base, base + _CHUNK, dtype="float64") * self._step_ns).astype("int64")
        ts = (offsets + np.int64(self.start_ns)).tolist()
        syms = np.asarray(self.symbols, dtype=object)[idx].tolist()
        # plain tuples in Tick field order (Tick is a named tuple): the cheapest record to build
        return list(
            zip(syms, ts, prices.tolist(), sizes.tolist(), _repeat(self.name), strict=False)
        )

    def take(self, n: int) -> list[Tick]:
        """The next `n` ticks of the deterministic sequence (without pacing)."""
        return list(map(Tick._make, self._take_raw(n)))

    def _take_raw(self, n: int) -> list[tuple]:
        if self.start_ns is None:
            self.start_ns = now_ns()
        out: list[tuple] = []
        while len(out) < n:
            if not self._buffer:
                self._buffer = self._generate_chunk()
            k = n - len(out)
            out.extend(self._buffer[:k])
            self._buffer = self._buffer[k:]
        self._next += n
        return out

    def run(
        self,
        queue: BoundedTickQueue,
        stop: threading.Event,
        on_connected: OnConnected | None = None,
        on_bar: OnBar | None = None,
    ) -> SourceEnd:
        if self.start_ns is None:
            self.start_ns = now_ns()
        wall0 = time.monotonic() - (now_ns() - self.start_ns) / 1e9 if self.paced else 0.0
        # paced: ~100 wake-ups per second; fast: chunks of 1000 ticks
        batch = max(1, int(self.ticks_per_sec / 100)) if self.paced else _CHUNK
        while not stop.is_set():
            n = batch if self.limit is None else min(batch, self.limit - self._next)
            if n <= 0:
                return SourceEnd("exhausted", last_tick_ts=self.last_tick_ts)
            if self.paced:
                due = wall0 + (self._next + n) * self._step_ns / 1e9
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            ticks = self._take_raw(n)
            queue.put_many(ticks, block=self.block_when_full)
            self.last_tick_ts = ticks[-1][1]
        return SourceEnd("stopped", last_tick_ts=self.last_tick_ts)


class PolygonTickSource:
    """Polygon stocks websocket through `polygon.WebSocketClient` (host configurable).

    Trades (`T`) become ticks; minute aggregates (`AM`) go to `on_bar`. One `run` = one
    connection: the client is built with `max_reconnects=0` so a dropped connection returns
    here as `SourceEnd("disconnected")` and the session reconnects with its own backoff,
    re-subscribing and gap-filling. A bad key raises `FatalError` (never retried).
    """

    name = "polygon"

    def __init__(
        self,
        symbols: Sequence[str],
        api_key: SecretStr,
        host: str,
        secure: bool = False,
        subscribe_trades: bool = True,
        subscribe_aggs: bool = True,
        *,
        market: str = "stocks",
        connect_timeout: float = 10.0,
    ):
        if not symbols:
            raise ConfigError("PolygonTickSource needs at least one symbol")
        if not (subscribe_trades or subscribe_aggs):
            raise ConfigError("subscribe to trades, minute aggregates, or both")
        self.symbols = tuple(symbols)
        self._api_key = api_key
        self.host = host
        self.secure = secure
        self.market = market
        self.connect_timeout = connect_timeout
        self.subscribe_trades = subscribe_trades
        self.subscriptions = [f"T.{s}" for s in self.symbols if subscribe_trades] + [
            f"AM.{s}" for s in self.symbols if subscribe_aggs
        ]
        self.last_tick_ts: int | None = None

    def run(
        self,
        queue: BoundedTickQueue,
        stop: threading.Event,
        on_connected: OnConnected | None = None,
        on_bar: OnBar | None = None,
    ) -> SourceEnd:
        return asyncio.run(self._run(queue, stop, on_connected, on_bar))

    def _on_messages(self, msgs, queue: BoundedTickQueue, on_bar: OnBar | None) -> None:
        from polygon.websocket.models import EquityAgg, EquityTrade

        ticks = []
        for m in msgs:
            if isinstance(m, EquityTrade):
                if m.timestamp is None or m.price is None:
                    continue
                ts = int(m.timestamp) * 1_000_000
                ticks.append(Tick(m.symbol, ts, float(m.price), float(m.size or 0), "polygon"))
                if self.last_tick_ts is None or ts > self.last_tick_ts:
                    self.last_tick_ts = ts
            elif isinstance(m, EquityAgg) and on_bar is not None and m.start_timestamp is not None:
                on_bar(
                    {
                        "symbol": m.symbol,
                        "ts": int(m.start_timestamp) * 1_000_000,
                        "open": m.open,
                        "high": m.high,
                        "low": m.low,
                        "close": m.close,
                        "volume": m.volume,
                        "vwap": m.vwap if m.vwap is not None else math.nan,
                        "trades": None,
                    }
                )
        if ticks:
            queue.put_many(ticks)

    async def _run(self, queue, stop, on_connected, on_bar) -> SourceEnd:
        from polygon import WebSocketClient
        from polygon.exceptions import AuthError

        client = WebSocketClient(
            api_key=self._api_key.get_secret_value(),
            feed=self.host,
            market=self.market,
            secure=self.secure,
            subscriptions=list(self.subscriptions),
            max_reconnects=0,
        )
        receiving = False

        async def processor(msgs) -> None:
            nonlocal receiving
            self._on_messages(msgs, queue, on_bar)
            if not receiving:
                receiving = True
                if on_connected is not None:
                    on_connected(max(now_ns(), self.last_tick_ts or 0))

        task = asyncio.create_task(client.connect(processor))
        started = time.monotonic()
        while not task.done():
            if stop.is_set():
                await _close(client, task)
                return SourceEnd("stopped", last_tick_ts=self.last_tick_ts)
            established = client.websocket is not None and not client.schedule_resub
            if not established and time.monotonic() - started > self.connect_timeout:
                await _close(client, task)
                return SourceEnd(
                    "disconnected",
                    last_tick_ts=self.last_tick_ts,
                    error=f"could not connect to {self.host} within {self.connect_timeout:g}s",
                )
            await asyncio.wait({task}, timeout=0.02)
        exc = task.exception()
        if isinstance(exc, AuthError):
            raise FatalError(f"authentication failed: {exc}", provider="polygon")
        error = f"{type(exc).__name__}: {exc}" if exc else "server closed the connection"
        return SourceEnd("disconnected", last_tick_ts=self.last_tick_ts, error=error)


async def _close(client, task: asyncio.Task) -> None:
    try:
        await asyncio.wait_for(client.close(), timeout=2.0)
    except Exception:  # noqa: BLE001 - closing a broken socket may fail; we are leaving anyway
        pass
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
