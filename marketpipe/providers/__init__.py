"""Provider adapters; which exist and how to build them is `marketpipe.providers.registry`."""

from __future__ import annotations

from marketpipe.errors import ConfigError
from marketpipe.providers._http import call_with_retries
from marketpipe.providers.base import BarsProvider, BarsQuery, BaseProvider, FetchResult
from marketpipe.providers.fallback import fetch_with_fallback
from marketpipe.providers.registry import RECORDS, network_provider_names, record

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

PROVIDER_NAMES: tuple[str, ...] = tuple(RECORDS)
NETWORK_SOURCES: tuple[str, ...] = network_provider_names()


def get_provider(name: str, settings=None, **options) -> BarsProvider:
    """Build the named adapter (its registry record's factory). Imports lazily so an unused
    vendor library never loads.

    `settings` (a `Settings`) supplies base URLs, keys and rate limits; `options` go to the
    adapter's constructor (e.g. `replay_path=…`, `api_key=…`, `limiter=…`).
    """
    return record(name).build(settings, **options)


def source_names(spec: str) -> list[str]:
    """'polygon,yahoo' -> ['polygon', 'yahoo'], each checked against the registry."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        record(n)  # ConfigError naming the known sources
    if not names:
        raise ConfigError("no source given")
    return names


def build_provider(name: str, settings=None, options: dict | None = None) -> BarsProvider:
    """An adapter configured for pipeline use; `replay_path` reaches only the replay adapter."""
    opts = dict(record(name).pipeline_options)
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
