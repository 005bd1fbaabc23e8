"""Provider adapters and their explicit registry."""

from __future__ import annotations

from marketpipe.errors import ConfigError
from marketpipe.providers._http import call_with_retries
from marketpipe.providers.base import BarsProvider, BarsQuery, BaseProvider, FetchResult
from marketpipe.providers.fallback import fetch_with_fallback

__all__ = [
    "call_with_retries",
    "fetch_with_fallback",
    "BarsProvider",
    "BarsQuery",
    "BaseProvider",
    "FetchResult",
    "get_provider",
    "PROVIDER_NAMES",
]

PROVIDER_NAMES: tuple[str, ...] = ("synthetic", "replay", "yahoo", "polygon")


def get_provider(name: str, settings=None, **options) -> BarsProvider:
    """Build the named adapter. Imports lazily so an unused vendor library never loads.

    `settings` (a `Settings`) supplies base URLs, keys and rate limits; `options` go to the
    adapter's constructor (e.g. `replay_path=…`, `api_key=…`, `limiter=…`).
    """
    if name == "synthetic":
        from marketpipe.providers.synthetic import SyntheticProvider

        return SyntheticProvider(**options)
    if name == "replay":
        from marketpipe.providers.replay import ReplayProvider

        return ReplayProvider(**options)
    if name == "yahoo":
        from marketpipe.providers.yahoo import YahooProvider

        return YahooProvider(settings, **options)
    if name == "polygon":
        from marketpipe.providers.polygon import PolygonProvider

        return PolygonProvider(settings, **options)
    raise ConfigError(f"unknown source {name!r}; use one of {', '.join(PROVIDER_NAMES)}")
