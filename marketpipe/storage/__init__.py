"""Two storage tiers that behave as one: the hot SQL store and the cold Delta Lake.

Stores are chosen by URL scheme from two registries (one record per backend). A new backend is
its module plus one `register_hot_store` / `register_cold_store` call here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from marketpipe.settings import Settings
    from marketpipe.storage.hot import SqlHotStore
    from marketpipe.storage.interfaces import ColdStore


@dataclass
class Stores:
    hot: SqlHotStore
    cold: ColdStore

    def close(self) -> None:
        self.hot.dispose()


@dataclass(frozen=True)
class StoreBackend:
    """One registry record: the URL schemes a backend serves and how to open it."""

    name: str
    schemes: tuple[str, ...]  # "" = a local path without scheme
    factory: Callable[[Settings], object]


HOT_BACKENDS: dict[str, StoreBackend] = {}
COLD_BACKENDS: dict[str, StoreBackend] = {}


def register_hot_store(backend: StoreBackend) -> None:
    HOT_BACKENDS[backend.name] = backend


def register_cold_store(backend: StoreBackend) -> None:
    COLD_BACKENDS[backend.name] = backend


def _scheme(url: str) -> str:
    head = url.split("://", 1)[0].lower() if "://" in url else ""
    return head.split("+", 1)[0]  # postgresql+psycopg → postgresql


def _pick(registry: dict[str, StoreBackend], url: str, what: str) -> StoreBackend:
    scheme = _scheme(url)
    for backend in registry.values():
        if scheme in backend.schemes:
            return backend
    from marketpipe.errors import ConfigError

    known = sorted({s or "a local path" for b in registry.values() for s in b.schemes})
    raise ConfigError(f"no {what} backend for scheme {scheme!r}: use {', '.join(known)}")


def _open_sql_hot(settings: Settings):
    from marketpipe.storage.hot import SqlHotStore

    hot_url = settings.hot_url_resolved
    if hot_url.startswith("sqlite:///"):  # SQLite creates the file, not its folder
        Path(hot_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return SqlHotStore(hot_url)


def _open_delta_cold(settings: Settings):
    from marketpipe.storage.delta_lake import DeltaLake

    url = settings.cold_url_resolved
    delta = settings.delta_storage_options() if url.startswith("s3://") else None
    return DeltaLake(url, settings.storage_options, delta)


register_hot_store(StoreBackend("sql", ("sqlite", "postgresql"), _open_sql_hot))
register_cold_store(StoreBackend("delta", ("", "file", "s3"), _open_delta_cold))


def open_stores(settings: Settings) -> Stores:
    """Open (and migrate) the hot store and the lake named by the settings."""
    hot = _pick(HOT_BACKENDS, settings.hot_url_resolved, "hot store").factory(settings)
    try:
        cold = _pick(COLD_BACKENDS, settings.cold_url_resolved, "cold lake").factory(settings)
    except BaseException:
        hot.dispose()
        raise
    return Stores(hot=hot, cold=cold)
