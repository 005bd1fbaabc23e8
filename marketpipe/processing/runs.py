"""What a processing run covers and reports (Prefect-free): its symbols, window and totals."""

from __future__ import annotations

from datetime import date, timedelta

from marketpipe.storage import Stores

DEFAULT_LOOKBACK_DAYS = 90
TOTAL_KEYS = (
    "bars_in",
    "duplicates_removed",
    "flagged",
    "features_hot",
    "features_cold",
    "quality_rows",
)


def processing_window(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    end = end or today
    return start or end - timedelta(days=DEFAULT_LOOKBACK_DAYS), end


def stored_symbols(stores: Stores, interval: str) -> list[str]:
    """Every symbol with bars of `interval` in either tier."""
    stats = stores.hot.stats()
    syms = set(stats.loc[stats["interval"] == interval, "symbol"])
    cold = {p.symbol for p in stores.cold.partitions(interval)}
    return sorted(syms | cold)


def processing_totals(reports: list[dict]) -> dict:
    return {k: int(sum(r[k] for r in reports)) for k in TOTAL_KEYS}


def chunk_label(group: tuple[str, ...], start: date, end: date) -> str:
    return f"{group[0]}…{group[-1]}-{start:%Y%m%d}-{end:%Y%m%d}"
