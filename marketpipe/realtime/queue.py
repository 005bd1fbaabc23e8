"""A bounded, thread-safe tick queue with an explicit drop policy and counters.

Capacity is counted in ticks; ticks are stored in the batches they arrived in (one websocket
message, one synthetic chunk), each stamped with its `time.monotonic()` receive instant.
`drop_policy="oldest"` evicts the oldest queued ticks to make room (freshness first);
`"newest"` rejects incoming ticks that do not fit (what is queued is kept). Every tick offered is
counted in `received`; every tick lost in `dropped` -- nothing disappears silently.
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
Batch = tuple[float, list[Tick]]  # (receive instant, ticks)


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
        self._batches: deque[list] = deque()  # [recv, ticks]
        self._depth = 0
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
        """Offer one tick; False when a tick (it, or an older one) had to be dropped."""
        return self.put_many([tick]) == 0

    def put_many(self, ticks: Iterable[Tick], *, block: bool = False, timeout: float = 5.0) -> int:
        """Offer a batch of ticks received now; returns how many ticks were dropped.

        With `block=True` (synthetic sources only: a real feed cannot be paused) the producer
        waits up to `timeout` s for room before the drop policy applies.
        """
        ticks = ticks if isinstance(ticks, list) else list(ticks)
        n = len(ticks)
        if not n:
            return 0
        recv = time.monotonic()
        cap = self.maxsize
        with self._lock:
            self.received += n
            if block and self._depth + min(n, cap) > cap:
                self._not_full.wait_for(lambda: self._depth + min(n, cap) <= cap, timeout)
            dropped = 0
            room = cap - self._depth
            if n > room:
                if self.drop_policy == "newest":
                    dropped = n - room
                    ticks = ticks[:room]
                else:
                    need = n - room
                    while need > 0 and self._batches:
                        head = self._batches[0]
                        k = min(need, len(head[1]))
                        if k == len(head[1]):
                            self._batches.popleft()
                        else:
                            head[1] = head[1][k:]
                        self._depth -= k
                        need -= k
                        dropped += k
                    if need > 0:  # the batch alone is larger than the queue
                        ticks = ticks[need:]
                        dropped += need
            if ticks:
                self._batches.append([recv, ticks])
                self._depth += len(ticks)
            if self._depth > self.max_depth:
                self.max_depth = self._depth
            self.dropped += dropped
            self._not_empty.notify()
        return dropped

    # ---- consumer side -------------------------------------------------------------------
    def get_batches(self, max_items: int, timeout: float) -> list[Batch]:
        """Batches holding up to `max_items` ticks, waiting at most `timeout` s for the first."""
        with self._lock:
            if not self._batches and timeout > 0:
                self._not_empty.wait(timeout)
            self._depth_sum += self._depth
            self._depth_samples += 1
            out: list[Batch] = []
            taken = 0
            while self._batches and taken < max_items:
                head = self._batches[0]
                k = min(max_items - taken, len(head[1]))
                if k == len(head[1]):
                    self._batches.popleft()
                    out.append((head[0], head[1]))
                else:
                    out.append((head[0], head[1][:k]))
                    head[1] = head[1][k:]
                taken += k
            self._depth -= taken
            if taken:
                self._not_full.notify_all()
            return out

    def get_many(self, max_items: int, timeout: float) -> list[Tick]:
        """Up to `max_items` ticks (flattened), waiting at most `timeout` s for the first."""
        return [t for _, ticks in self.get_batches(max_items, timeout) for t in ticks]

    def __len__(self) -> int:
        return self._depth

    def stats(self) -> QueueStats:
        with self._lock:
            avg = self._depth_sum / self._depth_samples if self._depth_samples else 0.0
            return QueueStats(self.received, self.dropped, self.max_depth, self._depth, avg)
