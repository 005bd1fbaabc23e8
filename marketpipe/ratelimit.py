"""Strict per-provider rate limiting: never more than N requests in ANY window of `period` seconds.

A token bucket with burst N can admit up to 2N-1 requests in some window of length `period`; this
limiter keeps a sliding log of the last N acquisition times instead: the (N+1)-th request waits
until the oldest of the last N is at least `period` old. `defer(seconds)` honours a server's
`Retry-After` by pushing the next allowed time. Thread-safe; the clock and sleep are injectable.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from marketpipe.errors import ConfigError


class RateLimiter:
    """Sliding-log limiter: at most `limit` acquisitions in any half-open window of `period` s."""

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "",
        margin: float = 0.0,
    ):
        if limit <= 0 or period <= 0 or margin < 0:
            raise ConfigError(f"rate limit must be positive, got {limit}/{period}s")
        self.limit = int(limit)
        self.period = float(period)
        self.name = name
        # extra spacing so that transit jitter cannot squeeze N+1 arrivals into a server's window
        self.margin = float(margin)
        self._clock = clock
        self._sleep = sleep
        self._log: deque[float] = deque()  # slot times in the last period (+ margin), sorted
        self._held = 0  # slots taken with `hold=True` whose answer has not come yet
        self._not_before = float("-inf")
        self._lock = threading.Lock()
        self._mine = threading.local()  # this thread's held acquisition (for `settle`)

    def _wait_needed(self, now: float) -> float:
        horizon = now - self.period - self.margin
        while self._log and self._log[0] <= horizon:
            self._log.popleft()  # out of every future window (times only grow)
        wait = self._not_before - now
        free = self.limit - self._held  # a held slot stays taken until its answer
        if free <= 0:
            wait = max(wait, 0.005)  # every slot is in flight: poll until one is settled
        elif len(self._log) >= free:
            oldest_needed = self._log[len(self._log) - free]
            wait = max(wait, oldest_needed + self.period + self.margin - now)
        return max(wait, 0.0)

    def try_acquire(self, hold: bool = False) -> float:
        """Take a slot now and return 0.0, or return the seconds to wait (nothing taken).

        `hold=True`: the slot stays taken, whatever the time, until this thread calls `settle`
        (the request's answer), and then counts from that moment."""
        with self._lock:
            now = self._clock()
            wait = self._wait_needed(now)
            if wait <= 0:
                self._mine.taken = now  # when this thread's last slot was granted
                if hold:
                    self._held += 1
                    self._mine.held = getattr(self._mine, "held", 0) + 1  # nested (redirects)
                else:
                    self._log.append(now)
            return wait

    def acquire(self, timeout: float | None = None, hold: bool = False) -> float:
        """Block until a slot is free, take it, and return the seconds waited.

        Raises `TimeoutError` when `timeout` would be exceeded (nothing taken). `hold`: see
        `try_acquire`.
        """
        start = self._clock()
        while True:
            wait = self.try_acquire(hold)
            if wait <= 0:
                return self._clock() - start
            if timeout is not None and self._clock() - start + wait > timeout:
                raise TimeoutError(f"rate limiter {self.name or ''} needs {wait:.1f}s more".strip())
            self._sleep(wait)

    def settle(self) -> None:
        """The request this thread acquired with `hold=True` has been answered: its slot counts
        from now.

        Spacing by *answer* times makes the limit hold at the server whatever the transit delay:
        the (N+1)-th request is sent a full period after the first one's answer, hence after it
        arrived. Until the answer the slot is held: a request that waits long for its answer (or
        to be sent at all, under load) can never expire out of the window while still in flight
        and then arrive beside N newer ones.
        """
        if not getattr(self._mine, "held", 0):
            return
        self._mine.held -= 1
        with self._lock:
            self._held -= 1
            self._log.append(self._clock())  # the newest time: the log stays sorted

    def defer(self, seconds: float | None) -> None:
        """Allow no acquisition for `seconds` from now (a 429's Retry-After)."""
        if seconds is None or seconds <= 0:
            return
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + float(seconds))

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.limit}/{self.period:g}s)"


_REGISTRY: dict[str, RateLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def get_limiter(
    provider: str, settings=None, *, limit: int | None = None, period: float | None = None
) -> RateLimiter:
    """The process-wide limiter for `provider`, built from `settings.rate_limit(provider)` once
    (without settings: the default of the provider's registry record; settings are never read
    from the environment here).

    A later call with a different configured rate replaces it (e.g. tests with a fast limit). The
    margin (1% of the period, at most 1 s) absorbs network jitter between our clock and the vendor's.
    """
    if limit is None or period is None:
        if settings is None:  # no run settings (a bare adapter): the provider record's default
            from marketpipe.providers.registry import RECORDS
            from marketpipe.settings import parse_rate

            rec = RECORDS.get(provider)
            text = rec.default_rate_limit if rec is not None else None
            limit, period = parse_rate(text) if text else (1_000_000, 1.0)
        else:
            limit, period = settings.rate_limit(provider)
    with _REGISTRY_LOCK:
        lim = _REGISTRY.get(provider)
        if lim is None or (lim.limit, lim.period) != (limit, float(period)):
            lim = RateLimiter(limit, period, name=provider, margin=min(0.01 * period, 1.0))
            _REGISTRY[provider] = lim
        return lim


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def max_in_any_window(times: list[float], period: float) -> int:
    """Largest number of timestamps inside any half-open window [t, t+period) (for tests/benchmarks)."""
    ts = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ts):
        while ts[lo] <= t - period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
