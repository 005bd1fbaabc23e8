"""Two storage tiers that behave as one: the hot SQL store and the cold Parquet lake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from marketpipe.settings import Settings
    from marketpipe.storage.hot import SqlHotStore
    from marketpipe.storage.lake import ParquetLake


@dataclass
class Stores:
    hot: SqlHotStore
    cold: ParquetLake

    def close(self) -> None:
        self.hot.dispose()


def open_stores(settings: Settings) -> Stores:
    """Open (and migrate) the hot store and the lake named by the settings."""
    from marketpipe.storage.hot import SqlHotStore
    from marketpipe.storage.lake import ParquetLake

    if not settings.hot_url and not settings.cold_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    elif settings.hot_url_resolved.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Stores(
        hot=SqlHotStore(settings.hot_url_resolved),
        cold=ParquetLake(settings.cold_url_resolved, settings.storage_options),
    )
