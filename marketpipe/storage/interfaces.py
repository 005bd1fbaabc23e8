"""Typed interfaces of the storage tiers: what flows, tasks and the CLI may call on a store.

A new backend implements one of these Protocols and registers a factory for its URL schemes in
`marketpipe.storage` (`register_cold_store` / `register_hot_store`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import pandas as pd

from marketpipe.storage.lake_reports import CompactReport, PartitionInfo, WriteReport


@runtime_checkable
class ColdStore(Protocol):
    """The cold tier: bars and features older than the hot window, with history."""

    url: str

    # bars
    def write_bars(self, df: pd.DataFrame) -> WriteReport: ...

    def read_bars(
        self,
        symbols: Iterable[str] | str,
        interval: str,
        start: object = None,
        end: object = None,
        *,
        as_of: object = None,
        with_ingested_at: bool = False,
    ) -> pd.DataFrame: ...

    # features
    def write_features(self, df: pd.DataFrame) -> int: ...

    def read_features(self, symbols, interval: str, start=None, end=None) -> pd.DataFrame: ...

    # partitions: tiering, status, gaps
    def partitions(
        self, interval: str | None = None, symbols: Iterable[str] | str | None = None
    ) -> list[PartitionInfo]: ...

    def partition_keys(self, interval: str, symbol: str, year: int) -> pd.DatetimeIndex: ...

    def verify_partition(
        self, interval: str, symbol: str, year: int, expected_keys: Iterable, *, exact: bool = False
    ) -> bool: ...

    def delete_partition_rows(
        self, interval: str, symbol: str, year: int, keys: Iterable
    ) -> int: ...

    # maintenance
    def compact(
        self,
        interval: str | None = None,
        symbols: Iterable[str] | str | None = None,
        target_bytes: int = ...,
    ) -> CompactReport: ...

    def vacuum(self, retention_hours: int = ...) -> list[str]: ...

    # history
    def versions(self) -> list[dict]: ...

    def restore(self, version: int) -> dict: ...


@runtime_checkable
class HotBars(Protocol):
    """The bars part of the hot tier (the SQL store implements much more: ledger, quarantine…)."""

    def upsert_bars(self, df: pd.DataFrame) -> int: ...

    def read_bars(self, symbols, interval: str, start=None, end=None, **kw) -> pd.DataFrame: ...

    def delete_bars(self, symbol, interval, start=None, end=None, ingested_before=None) -> int: ...

    def stats(self) -> pd.DataFrame: ...

    def dispose(self) -> None: ...
