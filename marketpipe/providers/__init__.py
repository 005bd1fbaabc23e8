"""Provider adapters and their explicit registry."""

from __future__ import annotations

from marketpipe.errors import ConfigError
from marketpipe.providers.base import BarsProvider, BarsQuery, BaseProvider, FetchResult

__all__ = [
    "BarsProvider",
    "BarsQuery",
    "BaseProvider",
    "FetchResult",
    "get_provider",
    "PROVIDER_NAMES",
]

PROVIDER_NAMES: tuple[str, ...] = ("synthetic", "replay", "yahoo", "polygon")


def get_provider(name: str, settings=None, **options) -> BarsProvider:
    """Build the named adapter. Imports lazily so an unused vendor library never loads."""
    if name == "synthetic":
        from marketpipe.providers.synthetic import SyntheticProvider

        return SyntheticProvider(**options)
    if name not in PROVIDER_NAMES:
        raise ConfigError(f"unknown source {name!r}; use one of {', '.join(PROVIDER_NAMES)}")
    raise ConfigError(f"source {name!r} is not available in this build")
