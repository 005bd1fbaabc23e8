"""Writes micro-batches on its own thread, strictly in submission order.

The consumer keeps aggregating while a batch is being built and committed; at most `depth`
batches wait (then `submit` blocks: backpressure reaches the bounded tick queue and its drop
policy, never an unbounded buffer). Each batch is ONE `flush(sink, bars, quarantine)` call -- the
seam where `flows/realtime.py` puts one Prefect task call per micro-batch.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from marketpipe.realtime.aggregator import BarRow, late_quarantine, rows_to_bars
from marketpipe.realtime.gapfill import bar_rows
from marketpipe.realtime.sink import BarSink, FlushFn
from marketpipe.realtime.ticks import Tick

_EMPTY_Q = pd.DataFrame()


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread running `target` in a copy of the caller's context (so a Prefect flow-run
    context, or any other contextvar, is visible to the flush callable)."""
    ctx = contextvars.copy_context()
    thread = threading.Thread(target=ctx.run, args=(target,), name=name, daemon=True)
    thread.start()
    return thread


class Flusher:
    def __init__(
        self,
        sink: BarSink,
        flush_fn: FlushFn,
        *,
        interval: str,
        source: str,
        window_ns: int,
        lateness_ns: int,
        run_id: str,
        on_flush: Callable[[dict], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        depth: int = 4,
    ):
        self.sink, self.flush_fn = sink, flush_fn
        self.interval, self.source = interval, source
        self.window_ns, self.lateness_ns, self.run_id = window_ns, lateness_ns, run_id
        self.on_flush, self.on_error = on_flush, on_error
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self.failed: BaseException | None = None
        self.streamed: dict[tuple[str, int], BarRow] = {}  # bars as stored (stream or REST)
        self.latencies: list[np.ndarray] = []  # tick receive -> commit, seconds
        self.durations: list[float] = []  # build + write + commit, seconds
        self.bars_written = 0
        self.quarantined = 0
        self.flushes = 0

    def start(self) -> None:
        self._thread = start_thread(self._loop, "mp-rt-flusher")

    def submit(
        self,
        rows: list[BarRow],
        late: list[Tick],
        recv: np.ndarray,
        extra_bars: pd.DataFrame | None = None,
        final: bool = False,
    ) -> None:
        self._q.put((rows, late, recv, extra_bars, final))

    def wait_idle(self) -> None:
        """Block until every submitted batch is committed (or failed)."""
        self._q.join()

    def close(self, timeout: float = 60.0) -> bool:
        """Commit what is pending and stop the thread; False if it did not finish in time."""
        if self._thread is None:
            return True
        self._q.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def write_now(self, bars: pd.DataFrame) -> int:
        """Write REST bars directly (caller ensures the flusher is idle, to keep write order)."""
        if not len(bars):
            return 0
        written, _ = self.flush_fn(self.sink, bars, _EMPTY_Q)
        self.streamed.update(bar_rows(bars))
        self.bars_written += written
        return written

    # ------------------------------------------------------------------ thread
    def _loop(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                if self.failed is None:
                    self._write(*item)
            except BaseException as exc:  # noqa: BLE001 - reported through on_error
                self.failed = exc
                if self.on_error:
                    self.on_error(exc)
            finally:
                self._q.task_done()

    def _write(self, rows, late, recv, extra_bars, final) -> None:
        started = time.monotonic()
        bars = rows_to_bars(rows, self.interval, self.source)
        if extra_bars is not None and len(extra_bars):
            bars = pd.concat([bars, extra_bars], ignore_index=True) if len(bars) else extra_bars
        quarantine = (
            late_quarantine(
                late,
                window_ns=self.window_ns,
                lateness_ns=self.lateness_ns,
                interval=self.interval,
                run_id=self.run_id,
            )
            if late
            else _EMPTY_Q
        )
        written, quarantined = self.flush_fn(self.sink, bars, quarantine)
        committed = time.monotonic()
        for r in rows:
            self.streamed[(r[0], r[1])] = r
        if extra_bars is not None and len(extra_bars):
            self.streamed.update(bar_rows(extra_bars))
        if len(recv):
            self.latencies.append(committed - recv)
        self.durations.append(committed - started)
        self.bars_written += written
        self.quarantined += quarantined
        self.flushes += 1
        if self.on_flush:
            self.on_flush(
                {"bars": written, "quarantined": quarantined, "ticks": len(recv), "final": final}
            )
