"""Where micro-batches go: the `BarSink` protocol, the default flush, and an in-memory sink.

The lead wires `SqlHotStore` (it has `upsert_bars` / `write_quarantine`) through `HotStoreSink`;
`MemorySink` is a dict upserting on the bar key, for tests and dry runs.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from marketpipe.bars import BAR_COLUMNS, empty_bars


@runtime_checkable
class BarSink(Protocol):
    def write_bars(self, df: pd.DataFrame) -> int: ...

    def write_quarantine(self, df: pd.DataFrame) -> int: ...


# flush(sink, bars, quarantine) -> (bars written, quarantine rows written). The lead makes this
# ONE Prefect task call per micro-batch.
FlushFn = Callable[[BarSink, pd.DataFrame, pd.DataFrame], tuple[int, int]]


def default_flush(sink: BarSink, bars: pd.DataFrame, quarantine: pd.DataFrame) -> tuple[int, int]:
    written = sink.write_bars(bars) if len(bars) else 0
    quarantined = sink.write_quarantine(quarantine) if len(quarantine) else 0
    return written, quarantined


class HotStoreSink:
    """Adapts anything with `upsert_bars(df)` and `write_quarantine(df)` (e.g. `SqlHotStore`)."""

    def __init__(self, store: Any):
        self.store = store

    def write_bars(self, df: pd.DataFrame) -> int:
        return int(self.store.upsert_bars(df))

    def write_quarantine(self, df: pd.DataFrame) -> int:
        return int(self.store.write_quarantine(df))


class MemorySink:
    """Thread-safe in-memory store: bars upserted on (symbol, interval, ts), quarantine appended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bars: dict[tuple[str, str, pd.Timestamp], dict] = {}
        self.quarantine: list[dict] = []
        self.bar_writes = 0
        self.versions: Counter = Counter()  # how many times each bar key was written
        self.flushes = 0

    def write_bars(self, df: pd.DataFrame) -> int:
        with self._lock:
            for rec in df.to_dict("records"):
                key = (rec["symbol"], rec["interval"], rec["ts"])
                self.bars[key] = rec
                self.versions[key] += 1
            self.bar_writes += len(df)
            self.flushes += 1
        return len(df)

    def write_quarantine(self, df: pd.DataFrame) -> int:
        with self._lock:
            self.quarantine.extend(df.to_dict("records"))
        return len(df)

    def bars_frame(self) -> pd.DataFrame:
        with self._lock:
            recs = list(self.bars.values())
        if not recs:
            return empty_bars()
        df = pd.DataFrame(recs, columns=list(BAR_COLUMNS))
        return df.sort_values(["symbol", "interval", "ts"]).reset_index(drop=True)

    def quarantine_frame(self) -> pd.DataFrame:
        with self._lock:
            return pd.DataFrame(self.quarantine)
