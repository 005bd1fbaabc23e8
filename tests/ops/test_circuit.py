"""Circuit breaker per provider, with a fake clock: N consecutive failures open the circuit, the
provider is skipped (the fallback serves, one log line says so), then probed after the cool-down."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from marketpipe.errors import FatalError, RetryableError, UnknownSymbolError
from marketpipe.providers import BarsQuery, get_provider
from marketpipe.providers.base import FetchResult
from marketpipe.providers.circuit import CircuitBreakers
from marketpipe.providers.fallback import fetch_with_fallback
from tests.providers.conftest import DATA


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Flaky:
    """A provider named `name` that raises `exc` while set, else serves the replay file."""

    def __init__(self, name: str, exc: Exception | None):
        self.name, self.exc, self.calls = name, exc, 0
        self.inner = get_provider(
            "replay", replay_path=DATA / "replay" / "multi_bad_row.csv", source=name
        )

    def fetch(self, query: BarsQuery) -> FetchResult:
        self.calls += 1
        if self.exc is not None:
            raise self.exc
        return self.inner.fetch(query)


def q(*symbols) -> BarsQuery:
    return BarsQuery(symbols, "1d", date(2024, 1, 1), date(2024, 1, 31))


def _breaker_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "circuit breaker" in r.getMessage()]


def test_consecutive_retryable_failures_open_then_probe_then_close(caplog):
    clock = Clock()
    br = CircuitBreakers(failures=3, cooldown_s=60, clock=clock)
    polygon = Flaky("polygon", RetryableError("503", provider="polygon"))
    yahoo = Flaky("yahoo", None)
    caplog.set_level(logging.WARNING, logger="marketpipe.providers.circuit")
    for _ in range(3):  # each raises: the calling task would retry
        with pytest.raises(RetryableError):
            fetch_with_fallback([polygon, yahoo], q("AAPL"), br)
    assert br.state("polygon") == "open" and polygon.calls == 3
    assert _breaker_lines(caplog) == [
        "circuit breaker: polygon skipped for 60 s after 3 consecutive failures (last: "
        "polygon: 503); yahoo takes over"
    ]
    res = fetch_with_fallback([polygon, yahoo], q("AAPL", "MSFT"), br)
    assert set(res.bars["source"]) == {"yahoo"} and polygon.calls == 3  # skipped
    clock.t += 59.9
    fetch_with_fallback([polygon, yahoo], q("AAPL"), br)
    assert polygon.calls == 3 and br.state("polygon") == "open"
    clock.t += 0.1
    assert br.state("polygon") == "half-open"
    with pytest.raises(RetryableError):  # the probe fails: open for another cool-down
        fetch_with_fallback([polygon, yahoo], q("AAPL"), br)
    assert polygon.calls == 4 and br.state("polygon") == "open"
    fetch_with_fallback([polygon, yahoo], q("AAPL"), br)
    assert polygon.calls == 4
    clock.t += 60
    polygon.exc = None  # the vendor is back
    res = fetch_with_fallback([polygon, yahoo], q("AAPL"), br)
    assert polygon.calls == 5 and set(res.bars["source"]) == {"polygon"}
    assert br.state("polygon") == "closed"
    assert _breaker_lines(caplog)[-2:] == [
        "circuit breaker: probing polygon again after 60 s",
        "circuit breaker: polygon answered again; circuit closed",
    ]


def test_fatal_failures_count_unknown_symbols_do_not_and_success_resets():
    clock = Clock()
    br = CircuitBreakers(failures=2, cooldown_s=30, clock=clock)
    polygon = Flaky("polygon", UnknownSymbolError("unknown", provider="polygon"))
    yahoo = Flaky("yahoo", None)
    fetch_with_fallback([polygon, yahoo], q("AAPL", "MSFT", "AAPL"), br)
    assert br.state("polygon") == "closed" and polygon.calls == 3  # a symbol problem
    polygon.exc = FatalError("not authorised", provider="polygon")
    fetch_with_fallback([polygon, yahoo], q("AAPL", "MSFT", "AAPL", "MSFT"), br)
    assert polygon.calls == 5 and br.state("polygon") == "open"  # 2 failures, then skipped


def test_every_circuit_open_is_retryable_with_the_wait():
    clock = Clock()
    br = CircuitBreakers(failures=1, cooldown_s=100, clock=clock)
    a, b = Flaky("a", FatalError("x", provider="a")), Flaky("b", FatalError("y", provider="b"))
    with pytest.raises(FatalError):
        fetch_with_fallback([a, b], q("AAPL"), br)
    clock.t += 40
    with pytest.raises(RetryableError, match="next probe in 60 s") as err:
        fetch_with_fallback([a, b], q("AAPL"), br)
    assert err.value.retry_after == pytest.approx(60)
    assert (a.calls, b.calls) == (1, 1)
