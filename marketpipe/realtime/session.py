"""RealtimeSession: source -> bounded queue -> bar aggregator -> micro-batches -> sink.

Threads: a producer runs the source (reconnecting with exponential backoff + jitter after a
disconnect, at most `max_reconnects` times); a consumer drains the queue into the aggregator and
hands micro-batches to a flusher thread that commits them, in order, through
`flush(sink, bars, quarantine)` (one call per micro-batch, never per tick); the caller's thread
waits for the end (`until`, `duration`, `stop()`, source exhausted or failure), then everything held is flushed,
outage windows are gap-filled over REST and the session is reconciled with REST (REST wins).
Prefect-free: `flows/realtime.py` wraps `flush` as one task call per micro-batch.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from marketpipe import metrics
from marketpipe.bars import conform_bars
from marketpipe.errors import ConfigError, MarketpipeError
from marketpipe.realtime.aggregator import BarAggregator, MicroBatcher
from marketpipe.realtime.flusher import Flusher, start_thread
from marketpipe.realtime.gapfill import GapTracker, RestBackfill, fetch_rest_bars
from marketpipe.realtime.queue import BoundedTickQueue
from marketpipe.realtime.reconcile import compare_bars
from marketpipe.realtime.sink import BarSink, FlushFn, default_flush
from marketpipe.realtime.sources import TickSource
from marketpipe.realtime.ticks import SourceEnd, from_ns, now_ns


@dataclass
class SessionReport:
    run_id: str
    ticks_received: int = 0
    ticks_aggregated: int = 0
    ticks_per_sec: float = 0.0
    drops: int = 0
    late_ticks: int = 0
    bars_written: int = 0
    quarantined: int = 0
    vendor_bars: int = 0
    max_queue_depth: int = 0
    avg_queue_depth: float = 0.0
    flushes: int = 0
    reconnects: int = 0
    disconnects: list[dict] = field(default_factory=list)
    gap_filled_bars: int = 0
    gap_fill_errors: list[str] = field(default_factory=list)
    reconcile_differences: int = 0
    reconcile_details: list[dict] = field(default_factory=list)
    flush_latency_p50_ms: float | None = None
    flush_latency_p99_ms: float | None = None
    flush_duration_p50_ms: float | None = None  # build + write + commit of one micro-batch
    flush_duration_p99_ms: float | None = None
    duration_s: float = 0.0
    ended_by: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class RealtimeSession:
    """One trading session of real-time bars.

    `until` (aware datetime, e.g. the XNYS close) and/or `duration` bound the run; `stop()` ends it
    early. `backoff=(initial s, factor, cap s)` with jitter x[0.5, 1]; more than `max_reconnects`
    disconnects fail the session with a `MarketpipeError`. `rest_backfill(symbols, start, end)`
    returns bars at `bar_window` whose start is in [start, end]; it fills outages (once their
    windows are closed) and, with `reconcile`, is compared with the streamed bars at the end (REST
    wins). `flush(sink, bars, quarantine) -> (bars, quarantined)` defaults to writing to `sink`;
    `on_flush(info)` after each commit, `on_progress(report)` about once a second.
    """

    def __init__(
        self,
        source: TickSource,
        sink: BarSink,
        *,
        bar_window: timedelta = timedelta(minutes=1),
        allowed_lateness: timedelta = timedelta(seconds=2),
        queue_max: int = 100_000,
        drop_policy: str = "oldest",
        batch_size: int = 5_000,
        flush_ms: float = 200.0,
        duration: timedelta | float | None = None,
        until: datetime | None = None,
        rest_backfill: RestBackfill | None = None,
        reconcile: bool = True,
        max_reconnects: int = 5,
        backoff: tuple[float, float, float] = (0.5, 2.0, 10.0),
        flush: FlushFn | None = None,
        on_flush: Callable[[dict], None] | None = None,
        on_progress: Callable[[SessionReport], None] | None = None,
        run_id: str | None = None,
    ):
        if until is not None and until.tzinfo is None:
            raise ConfigError("until must be timezone-aware (UTC)")
        if max_reconnects < 0 or len(backoff) != 3 or backoff[0] < 0 or backoff[1] < 1:
            raise ConfigError("max_reconnects >= 0 and backoff=(initial s, factor >= 1, max s)")
        if not getattr(source, "subscribe_trades", True) and bar_window != timedelta(minutes=1):
            raise ConfigError("a minute-aggregates-only source needs bar_window=1 minute")
        self.source = source
        self.sink = sink
        self.queue = BoundedTickQueue(queue_max, drop_policy)
        self.aggregator = BarAggregator(bar_window, allowed_lateness, source=source.name)
        self.batcher = MicroBatcher(batch_size, flush_ms)
        if isinstance(duration, int | float):
            duration = timedelta(seconds=duration)
        self.duration = duration
        self.until = until
        self.rest_backfill = rest_backfill
        self.reconcile = reconcile
        self.max_reconnects = max_reconnects
        self.backoff = backoff
        self._flush_fn = flush or default_flush
        self._on_progress = on_progress
        self.report = SessionReport(run_id=run_id or uuid.uuid4().hex[:12])
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._done = threading.Event()  # source exhausted or failure
        self._lock = threading.Lock()
        self._gaps = GapTracker()
        self._vendor_bars: list[dict] = []
        self._flusher = Flusher(
            sink,
            self._flush_fn,
            interval=self.aggregator.interval,
            source=self.aggregator.source,
            window_ns=self.aggregator.window_ns,
            lateness_ns=self.aggregator.lateness_ns,
            run_id=self.report.run_id,
            on_flush=on_flush,
            on_error=self._fail,
        )
        self._failure: BaseException | None = None
        self._started_ns = 0
        self._t0 = 0.0

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Ask the session to end: it flushes everything it holds before `run` returns."""
        self._stop.set()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = exc
        self._done.set()

    def _deadline(self) -> float | None:
        ends = []
        if self.duration is not None:
            ends.append(self._t0 + self.duration.total_seconds())
        if self.until is not None:
            ends.append(self._t0 + (self.until - datetime.now(UTC)).total_seconds())
        return min(ends) if ends else None

    def run(self) -> SessionReport:
        """Run to the end; returns the report or raises `MarketpipeError` (after flushing)."""
        self._t0 = time.monotonic()
        self._started_ns = now_ns()
        deadline = self._deadline()
        self._flusher.start()
        consumer = start_thread(self._consume, "mp-rt-consumer")
        producer = start_thread(self._produce, "mp-rt-producer")
        interrupted = False
        try:
            self._wait_for_end(deadline)
        except KeyboardInterrupt:  # Ctrl-C: flush what we hold, then re-raise
            interrupted = True
            self.report.ended_by = "interrupt"
        if not self.report.ended_by:
            self.report.ended_by = (
                "failure"
                if self._failure
                else ("stop" if self._stop.is_set() else "source_exhausted")
            )
        self._stop.set()
        producer.join(timeout=15)
        self._draining.set()
        consumer.join(timeout=120)
        if consumer.is_alive() or not self._flusher.close(timeout=120):
            self._fail(MarketpipeError("realtime session did not finish flushing within 120 s"))
        elif self.reconcile and self.rest_backfill is not None and self._failure is None:
            self._reconcile()
        report = self._snapshot()
        self._observe_metrics(report)
        if self._failure is not None:
            if isinstance(self._failure, MarketpipeError):
                raise self._failure
            raise MarketpipeError(f"realtime session failed: {self._failure}") from self._failure
        if interrupted:
            raise KeyboardInterrupt
        return report

    def _wait_for_end(self, deadline: float | None) -> None:
        last_progress = time.monotonic()
        while not self._stop.is_set() and not self._done.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                self.report.ended_by = "deadline"
                return
            self._stop.wait(0.05)
            if time.monotonic() - last_progress >= 1.0:
                last_progress = time.monotonic()
                snap = self._snapshot()
                self._observe_metrics(snap)
                if self._on_progress:
                    self._on_progress(snap)

    # ------------------------------------------------------------------ producer
    def _produce(self) -> None:
        attempts = 0
        while not self._stop.is_set():
            try:
                end: SourceEnd = self.source.run(
                    self.queue, self._stop, on_connected=self._on_connected, on_bar=self._on_bar
                )
            except Exception as exc:  # noqa: BLE001 - surfaced through run()
                self._fail(
                    exc
                    if isinstance(exc, MarketpipeError)
                    else MarketpipeError(
                        f"realtime source {self.source.name} failed: {type(exc).__name__}: {exc}"
                    )
                )
                return
            if end.kind == "stopped":
                return
            if end.kind == "exhausted":
                self._done.set()
                return
            last = end.last_tick_ts
            self.report.disconnects.append(
                {
                    "at": end.at.isoformat(),
                    "last_tick_ts": None if last is None else from_ns(last).isoformat(),
                    "error": end.error,
                }
            )
            self._gaps.open(last if last is not None else self._started_ns)
            attempts += 1
            if attempts > self.max_reconnects:
                since = (
                    "no tick received"
                    if last is None
                    else f"last tick at {from_ns(last).isoformat()}"
                )
                self._fail(
                    MarketpipeError(
                        f"realtime source {self.source.name}: connection lost and {self.max_reconnects} "
                        f"reconnect(s) exhausted (max_reconnects={self.max_reconnects}); {since}; "
                        f"last error: {end.error}"
                    )
                )
                return
            initial, factor, cap = self.backoff
            delay = min(cap, initial * factor ** (attempts - 1)) * random.uniform(0.5, 1.0)
            if self._stop.wait(delay):
                return
            self.report.reconnects += 1

    def _on_connected(self, at_ns: int) -> None:
        self._gaps.data_resumed(at_ns)

    def _on_bar(self, bar: dict) -> None:
        with self._lock:
            self._vendor_bars.append(bar)
            self.report.vendor_bars += 1

    # ------------------------------------------------------------------ consumer
    def _consume(self) -> None:
        agg, batcher, queue = self.aggregator, self.batcher, self.queue
        try:
            while True:
                batches = queue.get_batches(50_000, min(batcher.time_left(), 0.05))
                for recv, ticks in batches:
                    agg.add_many(ticks)
                    batcher.add(recv, len(ticks))
                if batcher.due() or (
                    self._vendor_bars and not getattr(self.source, "subscribe_trades", True)
                ):
                    self._flush()
                self._fill_gaps(force=False)
                if self._draining.is_set() and not batches and len(queue) == 0:
                    break
            self._flush(final=True)
            self._fill_gaps(force=True)
        except BaseException as exc:  # noqa: BLE001 - surfaced through run()
            self._fail(exc)

    def _flush(self, final: bool = False) -> None:
        """Hand the changed bars and late ticks to the flusher (one micro-batch)."""
        agg = self.aggregator
        rows, late = agg.take(final=final)
        recv = self.batcher.take()
        with self._lock:
            vendor, self._vendor_bars = self._vendor_bars, []
        extra = None
        if vendor and not getattr(self.source, "subscribe_trades", True):
            # aggregates-only subscription: vendor minute bars are the bars
            extra = conform_bars(
                pd.DataFrame(vendor).assign(
                    interval="1m",
                    source=agg.source,
                    ts=lambda d: pd.to_datetime(d["ts"], unit="ns", utc=True),
                )
            )
        if rows or late or extra is not None:
            self._flusher.submit(rows, late, recv, extra, final)

    # ------------------------------------------------------------------ REST
    def _rest_bars(self, start_ns: int, end_ns: int) -> pd.DataFrame:
        agg = self.aggregator
        return fetch_rest_bars(
            self.rest_backfill, self.source.symbols, agg.interval, agg.window_ns, start_ns, end_ns
        )

    def _fill_gaps(self, force: bool) -> None:
        """Backfill outages over REST once their windows are closed (so REST bars are final)."""
        agg = self.aggregator
        force_end = max(now_ns(), agg.max_ts or 0) if force else None
        ready = self._gaps.take_ready(agg.watermark, agg.window_ns, force_end)
        if not ready:
            return
        if self.rest_backfill is None:
            self.report.gap_fill_errors.extend(
                f"no REST backfill configured for outage {from_ns(g.start_ns)} -> {from_ns(g.end_ns)}"
                for g in ready
            )
            return
        self._flush()  # streamed versions first, so REST's version is the one that stays
        self._flusher.wait_idle()
        for g in ready:
            try:
                self.report.gap_filled_bars += self._flusher.write_now(
                    self._rest_bars(g.start_ns, g.end_ns)
                )
            except MarketpipeError as exc:
                self.report.gap_fill_errors.append(
                    f"{from_ns(g.start_ns)} -> {from_ns(g.end_ns)}: {exc}"
                )

    def _reconcile(self) -> None:
        streamed = self._flusher.streamed
        if not streamed:
            return
        ts = [k[1] for k in streamed]
        try:
            rest = self._rest_bars(min(ts), max(ts))
        except MarketpipeError as exc:
            self.report.gap_fill_errors.append(f"reconciliation skipped: {exc}")
            return
        wins, count, details = compare_bars(streamed, rest)
        self._flusher.write_now(wins)
        self.report.reconcile_differences = count
        self.report.reconcile_details = details

    # ------------------------------------------------------------------ report
    def _observe_metrics(self, r: SessionReport) -> None:
        """Cumulative counts and the micro-batches committed since the last call → metrics."""
        f, (n_dur, n_lat) = self._flusher, getattr(self, "_metrics_seen", (0, 0))
        durations, latencies = f.durations[n_dur:], f.latencies[n_lat:]
        self._metrics_seen = (n_dur + len(durations), n_lat + len(latencies))
        metrics.observe_stream(
            r.run_id,
            self.aggregator.source,
            received=r.ticks_received,
            aggregated=r.ticks_aggregated,
            dropped=r.drops,
            late=r.late_ticks,
            bars=r.bars_written,
            flushes=r.flushes,
            queue=len(self.queue),
            flush_seconds=durations,
            worst_latency_s=[float(a.max()) for a in latencies if len(a)],
        )

    def _snapshot(self) -> SessionReport:
        r = self.report
        q = self.queue.stats()
        r.ticks_received, r.drops = q.received, q.dropped
        r.max_queue_depth, r.avg_queue_depth = q.max_depth, round(q.avg_depth, 1)
        r.ticks_aggregated, r.late_ticks = self.aggregator.aggregated, self.aggregator.late
        r.duration_s = round(time.monotonic() - self._t0, 3)
        r.ticks_per_sec = round(r.ticks_received / r.duration_s, 1) if r.duration_s else 0.0
        f = self._flusher
        r.bars_written, r.quarantined, r.flushes = f.bars_written, f.quarantined, f.flushes
        if f.latencies:
            lat = np.concatenate(f.latencies) * 1000.0
            r.flush_latency_p50_ms = round(float(np.percentile(lat, 50)), 2)
            r.flush_latency_p99_ms = round(float(np.percentile(lat, 99)), 2)
        if f.durations:
            dur = np.asarray(f.durations) * 1000.0
            r.flush_duration_p50_ms = round(float(np.percentile(dur, 50)), 2)
            r.flush_duration_p99_ms = round(float(np.percentile(dur, 99)), 2)
        return r


def install_sigterm(session: RealtimeSession) -> Callable[[], None]:
    """Make SIGTERM call `session.stop()` (main thread only); returns a function restoring the old handler."""
    if threading.current_thread() is not threading.main_thread():
        raise ConfigError("install_sigterm must be called from the main thread")
    previous = signal.getsignal(signal.SIGTERM)

    def _handler(signum, frame):  # noqa: ARG001
        session.stop()

    signal.signal(signal.SIGTERM, _handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
