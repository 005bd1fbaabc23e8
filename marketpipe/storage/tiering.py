"""Hot → cold tiering that never loses or duplicates a row.

For the slices (symbol, interval, year) of hot rows older than the hot window, in batches:
  1. read the hot rows with their `ingested_at` (noting the read time),
  2. write them all to the lake in ONE Delta commit (a MERGE that never replaces a newer lake row
     with an older hot one: issue 16.1),
  3. per slice, verify that the lake holds every key exactly once,
  4. delete exactly those hot rows that were not re-written after step 1.
A crash anywhere leaves every row visible exactly once through `read_bars` (the newer copy of a
key wins), and the next run finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from marketpipe.errors import StoreError
from marketpipe.storage import Stores
from marketpipe.storage.router import hot_cutoff

Step = Callable[[str, dict], None]
BATCH_ROWS = 1_000_000  # rows per lake commit (bounds memory; one commit for a usual run)


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
    stores: Stores,
    now: pd.Timestamp,
    hot_days: int,
    on_step: Step = _no_hook,
    *,
    batch_rows: int = BATCH_ROWS,
) -> TierReport:
    """Move rows older than `now - hot_days` from hot to cold; `on_step` lets tests inject faults
    (and writers) after each step of each slice."""
    cutoff = hot_cutoff(now, hot_days)
    report = TierReport(cutoff=cutoff)
    batch: list[tuple[dict, tuple, pd.DataFrame]] = []
    read_at = pd.Timestamp.now(tz="UTC")
    for sym, interval, year, lo, hi in tier_partitions(stores, cutoff):
        if not batch:
            read_at = pd.Timestamp.now(tz="UTC")
        rows = stores.hot.read_bars([sym], interval, lo, hi, with_ingested_at=True)
        if rows.empty:
            continue
        batch.append(({"symbol": sym, "interval": interval, "year": year}, (lo, hi), rows))
        if sum(len(r) for _, _, r in batch) >= batch_rows:
            _move(stores, batch, read_at, on_step, report)
            batch = []
    if batch:
        _move(stores, batch, read_at, on_step, report)
    return report


def _move(stores: Stores, batch, read_at: pd.Timestamp, on_step: Step, report: TierReport) -> None:
    stores.cold.write_bars(pd.concat([rows for _, _, rows in batch], ignore_index=True))
    for info, _, _ in batch:
        on_step("after_cold_write", info)
    for info, _, rows in batch:
        sym, interval, year = info["symbol"], info["interval"], info["year"]
        if not stores.cold.verify_partition(interval, sym, year, rows["ts"]):
            raise StoreError(f"tiering {sym} {interval} {year}: cold partition failed verification")
        on_step("after_verify", info)
    for info, (lo, hi), rows in batch:
        deleted = stores.hot.delete_bars(
            info["symbol"], info["interval"], lo, hi, ingested_before=read_at
        )
        on_step("after_hot_delete", info)
        report.partitions.append({**info, "rows": len(rows), "deleted": int(deleted)})
