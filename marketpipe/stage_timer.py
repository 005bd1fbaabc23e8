"""Where a run's time went: seconds per stage, summed over its batches, and the slowest stage.

    timer = StageTimer()
    with timer.stage("parse"):
        ...
    timer.add("hot_write", 0.25)
    timer.merge(other.as_dict())      # a task's timings, e.g. from another thread or process
    timer.as_dict()                   # {"fetch": 1.2, "parse": 0.3, ...} in STAGES order
    timer.slowest()                   # ("fetch", 1.2)

Stages are summed work, not wall time: with tasks running in parallel the sum can exceed the
run's wall time. Thread-safe; plain dicts travel between tasks (picklable, JSON-safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

STAGES: tuple[str, ...] = (
    "fetch",
    "parse",
    "validate",
    "route",
    "hot_write",
    "cold_write",
    "bookkeeping",
)


class StageTimer:
    """Accumulates seconds per named stage (the `STAGES` names, others allowed after them)."""

    def __init__(self, initial: Mapping[str, float] | None = None):
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        if initial:
            self.merge(initial)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + float(seconds)

    def merge(self, other: StageTimer | Mapping[str, float] | None) -> StageTimer:
        if other is None:
            return self
        items = other.as_dict() if isinstance(other, StageTimer) else dict(other)
        for name, seconds in items.items():
            self.add(name, seconds)
        return self

    def as_dict(self) -> dict[str, float]:
        """Seconds per stage (rounded to ms), every `STAGES` name present, in that order."""
        with self._lock:
            known = {k: round(self._seconds.get(k, 0.0), 3) for k in STAGES}
            extra = {k: round(v, 3) for k, v in self._seconds.items() if k not in STAGES}
        return {**known, **extra}

    def slowest(self) -> tuple[str, float] | None:
        """The stage with the most seconds, or None when nothing was timed."""
        items = [(k, v) for k, v in self.as_dict().items() if v > 0]
        return max(items, key=lambda kv: kv[1]) if items else None

    def summary(self) -> dict:
        """`{"stages": {...}, "slowest_stage": name | None}` for reports and artifacts."""
        slow = self.slowest()
        return {"stages": self.as_dict(), "slowest_stage": slow[0] if slow else None}

    def line(self) -> str:
        """One line for a CLI summary: `stages (s): fetch 1.20, parse 0.30, … — slowest: fetch`."""
        return format_stages(self.summary())


def format_stages(summary: Mapping) -> str:
    """The one-line form of a `StageTimer.summary()` dict (as it comes back in a flow report)."""
    stages = summary.get("stages") or {}
    parts = ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if v)
    slow = summary.get("slowest_stage")
    return f"stages (s): {parts or 'none timed'}" + (f" — slowest: {slow}" if slow else "")
