"""Hot → cold tiering that never loses or duplicates a row.

Per partition (interval, symbol, year) older than the hot window, in one idempotent step:
  1. read the hot rows (noting the read time),
  2. merge them into the lake partition (atomic rewrite; see `ParquetLake.write_bars`),
  3. read the partition back and verify the row count and key set,
  4. delete exactly those hot rows that were not re-written after step 1.
A crash anywhere leaves every row visible exactly once through `read_bars` (hot wins on overlap),
and the next run finishes the partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from marketpipe.errors import StoreError
from marketpipe.storage import Stores
from marketpipe.storage.router import hot_cutoff

Step = Callable[[str, dict], None]


@dataclass
class TierReport:
    cutoff: pd.Timestamp
    partitions: list[dict] = field(default_factory=list)

    @property
    def rows_moved(self) -> int:
        return sum(p["rows"] for p in self.partitions)


def _no_hook(step: str, info: dict) -> None:
    return None


def tier_partitions(
    stores: Stores, cutoff: pd.Timestamp
) -> list[tuple[str, str, int, pd.Timestamp, pd.Timestamp]]:
    """(symbol, interval, year, lo, hi) slices of hot rows with ts < cutoff."""
    out = []
    for row in stores.hot.stats().to_dict("records"):
        sym, interval = row["symbol"], row["interval"]
        first, last = pd.Timestamp(row["min_ts"]), pd.Timestamp(row["max_ts"])
        if first >= cutoff:
            continue
        for year in range(first.year, min(last, cutoff).year + 1):
            lo = max(pd.Timestamp(year=year, month=1, day=1, tz="UTC"), first)
            hi = min(pd.Timestamp(year=year + 1, month=1, day=1, tz="UTC"), cutoff)
            out.append((sym, interval, year, lo, hi))
    return out


def tier_hot_to_cold(
    stores: Stores, now: pd.Timestamp, hot_days: int, on_step: Step = _no_hook
) -> TierReport:
    """Move rows older than `now - hot_days` from hot to cold; `on_step` lets tests inject faults."""
    cutoff = hot_cutoff(now, hot_days)
    report = TierReport(cutoff=cutoff)
    for sym, interval, year, lo, hi in tier_partitions(stores, cutoff):
        info = {"symbol": sym, "interval": interval, "year": year}
        read_at = pd.Timestamp.now(tz="UTC")
        rows = stores.hot.read_bars([sym], interval, lo, hi)
        if rows.empty:
            continue
        stores.cold.write_bars(rows)
        on_step("after_cold_write", info)
        if not stores.cold.verify_partition(interval, sym, year, rows["ts"]):
            raise StoreError(f"tiering {sym} {interval} {year}: cold partition failed verification")
        on_step("after_verify", info)
        deleted = stores.hot.delete_bars(sym, interval, lo, hi, ingested_before=read_at)
        on_step("after_hot_delete", info)
        report.partitions.append({**info, "rows": len(rows), "deleted": int(deleted)})
    return report
