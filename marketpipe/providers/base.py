"""The one adapter shape every provider follows: typed query -> extract (the only I/O) -> transform.

`extract` performs requests (each one acquiring the provider's rate limiter first) and returns the
vendor payloads untouched; `transform` maps them to canonical bars (see `marketpipe.bars`) and
splits off rows it cannot map (`rejected`, reason `malformed`). Vendor field names never leave the
adapter module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from marketpipe.bars import INTERVALS, empty_bars
from marketpipe.errors import ConfigError
from marketpipe.symbols import validate_symbol


@dataclass(frozen=True)
class BarsQuery:
    """What to fetch: symbols, interval, and an inclusive range of calendar dates (exchange time)."""

    symbols: tuple[str, ...]
    interval: str
    start: date
    end: date

    def __post_init__(self):
        if self.interval not in INTERVALS:
            raise ConfigError(
                f"unknown interval {self.interval!r}; use one of {', '.join(INTERVALS)}"
            )
        if self.end < self.start:
            raise ConfigError(f"end {self.end} is before start {self.start}")
        object.__setattr__(self, "symbols", tuple(validate_symbol(s) for s in self.symbols))


@dataclass
class FetchResult:
    """Canonical output of one adapter call.

    `bars`: canonical columns (not yet contract-checked). `rejected`: rows the adapter could not map,
    with columns `symbol, interval, ts, source, reason, detail, payload` (reason `malformed`).
    `empty_symbols`: known symbols that had no bars in the range. `requests`: HTTP requests made.
    """

    bars: pd.DataFrame = field(default_factory=empty_bars)
    rejected: pd.DataFrame | None = None
    empty_symbols: list[str] = field(default_factory=list)
    requests: int = 0
    corporate_actions: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds: fetch (extract), parse


@runtime_checkable
class BarsProvider(Protocol):
    name: str

    def extract(self, query: BarsQuery) -> Any: ...

    def transform(self, raw: Any, query: BarsQuery) -> FetchResult: ...

    def fetch(self, query: BarsQuery) -> FetchResult: ...


class BaseProvider:
    """Convenience base: `fetch` = `transform(extract(query))`."""

    name = "base"

    def extract(self, query: BarsQuery) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def transform(self, raw: Any, query: BarsQuery) -> FetchResult:  # pragma: no cover
        raise NotImplementedError

    def fetch(self, query: BarsQuery) -> FetchResult:
        t0 = time.perf_counter()
        raw = self.extract(query)
        t1 = time.perf_counter()
        result = self.transform(raw, query)
        result.timings = {"fetch": t1 - t0, "parse": time.perf_counter() - t1, **result.timings}
        return result
