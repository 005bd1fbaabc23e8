"""A circuit breaker per provider: after N consecutive failures a provider is skipped for a
cool-down, then probed again (one call; success closes the circuit, failure re-opens it).

Used by `fetch_with_fallback` when a run has several sources (`--source polygon,yahoo`): while
polygon's circuit is open, yahoo serves every symbol and the run logs one line saying so. A single
source is never skipped (there is nothing to fall back to; its task retries decide).

Failures: any `RetryableError` or `FatalError` except `UnknownSymbolError` (a symbol problem, not
a provider one). `ConfigError` (the source cannot serve this request) and "no bars" are neutral.
State lives per process (`breakers(settings)`), shared by every chunk and retry of a run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from marketpipe.errors import FatalError, RetryableError, UnknownSymbolError

log = logging.getLogger(__name__)


def counts_as_failure(exc: BaseException) -> bool:
    return isinstance(exc, RetryableError | FatalError) and not isinstance(exc, UnknownSymbolError)


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class CircuitBreakers:
    """Breakers keyed by provider name. `clock` is injectable (tests use a fake one)."""

    def __init__(
        self,
        failures: int = 3,
        cooldown_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.threshold = max(1, int(failures))
        self.cooldown_s = float(cooldown_s)
        self.clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def state(self, name: str) -> str:
        """closed | open | half-open (the next call is a probe)."""
        with self._lock:
            st = self._states.get(name)
            if st is None or st.opened_at is None:
                return "closed"
            return "half-open" if self._cooled(st) else "open"

    def _cooled(self, st: _State) -> bool:
        return st.opened_at is not None and self.clock() - st.opened_at >= self.cooldown_s

    def allow(self, name: str) -> bool:
        """May `name` be called now? After the cool-down one probe goes through."""
        with self._lock:
            st = self._states.setdefault(name, _State())
            if st.opened_at is None:
                return True
            if self._cooled(st) and not st.probing:
                st.probing = True
                log.warning("circuit breaker: probing %s again after %.0f s", name, self.cooldown_s)
                return True
            return False

    def retry_in(self, name: str) -> float:
        with self._lock:
            st = self._states.get(name)
            if st is None or st.opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self.clock() - st.opened_at))

    def success(self, name: str) -> None:
        with self._lock:
            st = self._states.setdefault(name, _State())
            if st.opened_at is not None:
                log.warning("circuit breaker: %s answered again; circuit closed", name)
            self._states[name] = _State()

    def failure(self, name: str, exc: BaseException, fallback: str | None = None) -> None:
        with self._lock:
            st = self._states.setdefault(name, _State())
            st.failures += 1
            if st.probing or (st.opened_at is None and st.failures >= self.threshold):
                st.opened_at, st.probing = self.clock(), False
                then = f"; {fallback} takes over" if fallback else ""
                log.warning(
                    "circuit breaker: %s skipped for %.0f s after %d consecutive failures "
                    "(last: %s)%s",
                    name,
                    self.cooldown_s,
                    st.failures,
                    str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                    then,
                )


_REGISTRY: dict[tuple[int, float], CircuitBreakers] = {}
_REGISTRY_LOCK = threading.Lock()


def breakers(settings=None) -> CircuitBreakers:
    """The process's breakers for the settings' threshold and cool-down."""
    failures = getattr(settings, "circuit_failures", 3)
    cooldown = getattr(settings, "circuit_cooldown_s", 120.0)
    with _REGISTRY_LOCK:
        key = (int(failures), float(cooldown))
        if key not in _REGISTRY:
            _REGISTRY[key] = CircuitBreakers(failures, cooldown)
        return _REGISTRY[key]
