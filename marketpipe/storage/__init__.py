"""Two storage tiers that behave as one: the hot SQL store and the cold Parquet lake."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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

    hot_url = settings.hot_url_resolved
    if hot_url.startswith("sqlite:///"):  # SQLite creates the file, not its folder
        Path(hot_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return Stores(
        hot=SqlHotStore(hot_url),
        cold=ParquetLake(settings.cold_url_resolved, settings.storage_options),
    )
