"""The provider registry: one record per provider, read by everything that needs to know one.

A new provider is its adapter module, one `ProviderRecord` in `RECORDS`, and its tests. Readers:
`marketpipe.providers` (names, factory, pipeline options, network or not), `marketpipe.settings`
(default rate limit), `marketpipe.backfill` (request profile for planning),
`marketpipe.processing.clean` (dedupe priority), `deployments/bootstrap.py` (a global concurrency
limit per network provider) and `tasks/ratelimits.py` (which sources take cross-process slots).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from marketpipe.errors import ConfigError

if TYPE_CHECKING:  # imported lazily: settings reads this module and must stay light
    from marketpipe.backfill import RequestProfile

Rate = tuple[int, float]
# Polygon's intraday aggregates include pre- and post-market (04:00-20:00 ET, 16 h); they count
# against the 50k-bar page even though the adapter keeps regular hours only.
POLYGON_EXTENDED_MINUTES = 16 * 60


@dataclass(frozen=True)
class ProviderRecord:
    name: str
    factory: str  # "module:Class" of the adapter, imported only when the provider is built
    network: bool  # talks to a vendor over the network (rate limits, global slots, credentials)
    priority: int  # dedupe: when two sources hold the same bar, the lower number wins
    default_rate_limit: str | None = None  # the `MARKETPIPE_{NAME}_RATE_LIMIT` default
    takes_settings: bool = False  # the adapter's first argument is the `Settings`
    pipeline_options: dict = field(default_factory=dict)  # adapter options inside the pipeline
    profile: Callable[[str, Rate | None], RequestProfile] | None = None  # (interval, rate)

    def build(self, settings=None, **options):
        module, _, attr = self.factory.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        return cls(settings, **options) if self.takes_settings else cls(**options)

    def request_profile(self, interval: str, rate: Rate | None) -> RequestProfile:
        from marketpipe.backfill import RequestProfile

        if self.profile is None:  # local: one request serves many symbols, no limit
            return RequestProfile(
                max_bars_per_request=None, symbols_per_request=50, symbols_per_chunk=50
            )
        return self.profile(interval, rate)


def _polygon_profile(interval: str, rate: Rate | None) -> RequestProfile:
    from marketpipe.backfill import RequestProfile

    # the pipeline asks Polygon for splits and dividends too: 2 reference requests per symbol
    return RequestProfile(
        max_bars_per_request=50_000,
        rate=rate or (5, 60.0),
        request_seconds=0.3,
        extra_requests_per_symbol=2,
        raw_minutes_per_session=POLYGON_EXTENDED_MINUTES,  # what counts against the page
    )


def _yahoo_profile(interval: str, rate: Rate | None) -> RequestProfile:
    from marketpipe.backfill import RequestProfile

    days = {"1m": 7, "5m": 59, "15m": 59, "1h": 729, "1d": None}[interval]
    # +1: the adapter looks up later splits once per symbol to undo Yahoo's split adjustment
    return RequestProfile(
        max_bars_per_request=None,
        max_days_per_request=days,
        rate=rate or (60, 60.0),
        extra_requests_per_symbol=1,
    )


RECORDS: dict[str, ProviderRecord] = {
    r.name: r
    for r in (
        ProviderRecord(
            "synthetic", "marketpipe.providers.synthetic:SyntheticProvider", False, priority=40
        ),
        ProviderRecord("replay", "marketpipe.providers.replay:ReplayProvider", False, priority=30),
        ProviderRecord(
            "yahoo",
            "marketpipe.providers.yahoo:YahooProvider",
            True,
            priority=20,
            default_rate_limit="60/min",
            takes_settings=True,
            profile=_yahoo_profile,
        ),
        ProviderRecord(
            "polygon",
            "marketpipe.providers.polygon:PolygonProvider",
            True,
            priority=10,
            default_rate_limit="5/min",
            takes_settings=True,
            pipeline_options={"include_actions": True, "max_rate_limited": 100},
            profile=_polygon_profile,
        ),
    )
}


def record(name: str) -> ProviderRecord:
    try:
        return RECORDS[name]
    except KeyError:
        raise ConfigError(f"unknown source {name!r}; use one of {', '.join(RECORDS)}") from None


def network_provider_names() -> tuple[str, ...]:
    """Network providers, best first."""
    return tuple(n for n in source_priority() if RECORDS[n].network)


def source_priority() -> tuple[str, ...]:
    """Source names, best first (dedupe keeps the row of the first)."""
    return tuple(sorted(RECORDS, key=lambda n: RECORDS[n].priority))
