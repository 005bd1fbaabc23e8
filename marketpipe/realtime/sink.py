"""Where micro-batches go: the `BarSink` protocol, the default flush, and an in-memory sink.

The lead wires `SqlHotStore` (it has `upsert_bars` / `write_quarantine`) through `HotStoreSink`;
(The tests' in-memory sink is `tests/realtime/rt_support.MemorySink`.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import pandas as pd


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
