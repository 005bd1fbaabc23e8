"""Strict sliding-window limiter: never N+1 acquisitions inside any window of `period`."""

from __future__ import annotations

import random
import threading

import pytest

from marketpipe.errors import ConfigError
from marketpipe.ratelimit import RateLimiter, get_limiter, max_in_any_window, parse_retry_after
from marketpipe.settings import Settings


class FakeClock:
    """A shared virtual clock: `sleep` advances time (thread-safe)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += max(seconds, 1e-6)


def limiter(n: int, period: float, clock: FakeClock) -> RateLimiter:
    return RateLimiter(n, period, clock=clock, sleep=clock.sleep)


def test_burst_then_waits_a_full_period():
    clock = FakeClock()
    lim = limiter(5, 60, clock)
    stamps = []
    for _ in range(12):
        lim.acquire()
        stamps.append(clock())
    assert stamps[:5] == [1000.0] * 5
    assert stamps[5] == pytest.approx(1060.0) and stamps[10] == pytest.approx(1120.0)
    assert max_in_any_window(stamps, 60) == 5


def test_token_bucket_pattern_cannot_sneak_in_extra():
    """Requests spread over a period then a burst: a burst-N token bucket would allow 2N-1 here."""
    clock = FakeClock()
    lim = limiter(5, 10, clock)
    stamps = []
    for _ in range(5):
        lim.acquire()
        stamps.append(clock())
        clock.sleep(2.5)  # 0, 2.5, 5, 7.5, 10
    for _ in range(5):
        lim.acquire()
        stamps.append(clock())
    assert max_in_any_window(stamps, 10) == 5


def test_threads_never_exceed_limit_in_any_window():
    clock = FakeClock()
    lim = limiter(4, 1.0, clock)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(25):
            lim.acquire()
            with lock:
                stamps.append(clock())
            clock.sleep(rnd.random() * 0.3)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 200
    assert max_in_any_window(stamps, 1.0) <= 4


def test_real_clock_threads():
    lim = RateLimiter(3, 0.2)

    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            lim.acquire()
            with lock:  # the instant the slot was granted (a stamp taken after `acquire`
                # returns can lag it by a scheduler delay on a loaded machine)
                stamps.append(lim._mine.taken)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max_in_any_window(stamps, 0.2) <= 3


def test_retry_after_pushes_next_allowed_time():
    clock = FakeClock()
    lim = limiter(100, 1, clock)
    lim.acquire()
    lim.defer(30)
    assert lim.try_acquire() == pytest.approx(30)
    waited = lim.acquire()
    assert waited == pytest.approx(30)


def test_timeout_takes_nothing():
    clock = FakeClock()
    lim = limiter(1, 60, clock)
    lim.acquire()
    with pytest.raises(TimeoutError):
        lim.acquire(timeout=5)
    assert clock() == 1000.0


def test_invalid_and_from_settings():
    with pytest.raises(ConfigError):
        RateLimiter(0, 1)
    lim = get_limiter("polygon", Settings(polygon_rate_limit="5/min"))
    assert (lim.limit, lim.period) == (5, 60.0)
    assert get_limiter("polygon", Settings(polygon_rate_limit="5/min")) is lim
    assert (get_limiter("yahoo", Settings()).limit, get_limiter("yahoo", Settings()).period) == (
        60,
        60.0,
    )


def test_parse_retry_after():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_margin_spaces_the_next_window():
    clock = FakeClock()
    lim = RateLimiter(2, 1.0, clock=clock, sleep=clock.sleep, margin=0.1)
    stamps = []
    for _ in range(3):
        lim.acquire()
        stamps.append(clock())
    assert stamps[2] - stamps[0] == pytest.approx(1.1)


def test_a_held_slot_never_expires_before_its_answer():
    """A request still in flight (taken with hold=True, not settled) keeps its slot however long
    it takes; the slot then counts from its answer. (Before, a request slower than the period
    rotated out of the log, and a server window saw 102 requests at a limit of 100.)"""
    clock = FakeClock()
    lim = limiter(2, 1.0, clock)
    assert lim.try_acquire(hold=True) == 0.0  # in flight
    assert lim.try_acquire() == 0.0
    clock.sleep(5.0)  # long past a period: the plain slot expired, the held one did not
    assert lim.try_acquire() == 0.0  # the one free slot
    assert lim.try_acquire() > 0.0  # full: one held, one in the window
    clock.sleep(5.0)
    lim.settle()  # the answer, 10 s after it was sent
    answered = clock()
    assert lim.try_acquire() == 0.0  # the plain slot expired meanwhile
    assert lim.try_acquire() == pytest.approx(answered + 1.0 - clock())  # full until then


def test_held_slots_block_at_the_limit_until_settled():
    clock = FakeClock()
    lim = limiter(2, 1.0, clock)
    results = []

    def request():
        lim.acquire(hold=True)
        results.append(clock())

    first = threading.Thread(target=request)
    first.start()
    first.join()  # held by a thread that has not settled (its answer is outstanding)
    assert lim.try_acquire(hold=True) == 0.0
    clock.sleep(100.0)
    assert lim.try_acquire() > 0.0  # both in flight: nothing free whatever the time
    lim.settle()  # this thread's request answered
    assert lim._held == 1
    assert lim.try_acquire() > 0.0  # the answered slot counts from now
    clock.sleep(1.0)
    assert lim.try_acquire() == 0.0


def test_nested_holds_settle_one_each():
    """A redirect re-enters the pool's urlopen: two holds on one thread, two settles."""
    clock = FakeClock()
    lim = limiter(5, 1.0, clock)
    lim.acquire(hold=True)
    lim.acquire(hold=True)
    lim.settle()
    lim.settle()
    lim.settle()  # nothing left to settle: no effect
    assert lim._held == 0 and len(lim._log) == 2
