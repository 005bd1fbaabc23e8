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


# options an adapter gets by default inside the pipeline (callers' options win)
PIPELINE_DEFAULTS: dict[str, dict] = {"polygon": {"include_actions": True, "max_rate_limited": 100}}
NETWORK_SOURCES = ("polygon", "yahoo")


def source_names(spec: str) -> list[str]:
    """'polygon,yahoo' -> ['polygon', 'yahoo'], each checked against the registry."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        if n not in PROVIDER_NAMES:
            raise ConfigError(f"unknown source {n!r}; use one of {', '.join(PROVIDER_NAMES)}")
    if not names:
        raise ConfigError("no source given")
    return names


def build_provider(name: str, settings=None, options: dict | None = None) -> BarsProvider:
    """An adapter configured for pipeline use; `replay_path` reaches only the replay adapter."""
    opts = dict(PIPELINE_DEFAULTS.get(name, {}))
    for key, value in (options or {}).items():
        if key != "replay_path" or name == "replay":
            opts[key] = value
    return get_provider(name, settings, **opts)


def fetch_from(
    spec: str, query: BarsQuery, settings=None, options: dict | None = None
) -> FetchResult:
    """Fetch from one source, or from 'a,b' in order per symbol (fallback on fatal/no data)."""
    names = source_names(spec)
    providers = [build_provider(n, settings, options) for n in names]
    if len(providers) == 1:
        return providers[0].fetch(query)
    from marketpipe.providers.circuit import breakers

    return fetch_with_fallback(providers, query, breakers(settings))
