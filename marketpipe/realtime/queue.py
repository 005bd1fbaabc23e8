"""A bounded, thread-safe tick queue with an explicit drop policy and counters.

`drop_policy="oldest"` evicts the oldest queued tick to make room (freshness first);
`"newest"` rejects the incoming tick (what is queued is kept). Every tick offered is counted in
`received`; every tick lost is counted in `dropped` -- nothing disappears silently.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from marketpipe.errors import ConfigError
from marketpipe.realtime.ticks import Tick

DROP_POLICIES = ("oldest", "newest")


@dataclass(frozen=True)
class QueueStats:
    received: int
    dropped: int
    max_depth: int
    depth: int
    avg_depth: float


class BoundedTickQueue:
    def __init__(self, maxsize: int, drop_policy: str = "oldest"):
        if maxsize < 1:
            raise ConfigError(f"queue maxsize must be >= 1 (got {maxsize})")
        if drop_policy not in DROP_POLICIES:
            raise ConfigError(f"drop_policy must be one of {DROP_POLICIES} (got {drop_policy!r})")
        self.maxsize = maxsize
        self.drop_policy = drop_policy
        self._items: deque[Tick] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self.received = 0
        self.dropped = 0
        self.max_depth = 0
        self._depth_sum = 0
        self._depth_samples = 0

    # ---- producer side -------------------------------------------------------------------
    def put(self, tick: Tick) -> bool:
        """Offer one tick; False when it (or an older one) had to be dropped."""
        return self.put_many((tick,)) == 0

    def put_many(self, ticks: Iterable[Tick], *, block: bool = False, timeout: float = 5.0) -> int:
        """Offer ticks; returns how many ticks were dropped.

        With `block=True` (synthetic sources only: a real feed cannot be paused) the producer
        waits for room instead of dropping, up to `timeout` seconds per tick before dropping.
        """
        dropped = 0
        items = self._items
        with self._lock:
            for t in ticks:
                if not t.recv:
                    t.recv = time.monotonic()
                self.received += 1
                if len(items) >= self.maxsize and block:
                    self._not_full.wait_for(lambda: len(items) < self.maxsize, timeout)
                if len(items) >= self.maxsize:
                    dropped += 1
                    if self.drop_policy == "newest":
                        continue
                    items.popleft()
                items.append(t)
            depth = len(items)
            if depth > self.max_depth:
                self.max_depth = depth
            self.dropped += dropped
            self._not_empty.notify()
        return dropped

    # ---- consumer side -------------------------------------------------------------------
    def get_many(self, max_items: int, timeout: float) -> list[Tick]:
        """Up to `max_items` ticks, waiting at most `timeout` s for the first one."""
        with self._lock:
            if not self._items and timeout > 0:
                self._not_empty.wait(timeout)
            items = self._items
            n = min(max_items, len(items))
            self._depth_sum += len(items)
            self._depth_samples += 1
            out = [items.popleft() for _ in range(n)]
            if n:
                self._not_full.notify_all()
            return out

    def __len__(self) -> int:
        return len(self._items)

    def stats(self) -> QueueStats:
        with self._lock:
            avg = self._depth_sum / self._depth_samples if self._depth_samples else 0.0
            return QueueStats(self.received, self.dropped, self.max_depth, len(self._items), avg)
