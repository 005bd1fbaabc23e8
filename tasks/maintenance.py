"""Maintenance tasks: tiering, compaction, vacuum (idempotent, retried on transient store errors)."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from marketpipe.storage import Stores
from marketpipe.storage.tiering import tier_hot_to_cold
from tasks.policy import STORE_RETRYING


@task(name="tier-hot-to-cold", cache_policy=NO_CACHE, **STORE_RETRYING)
def tier_task(stores: Stores, now: pd.Timestamp, hot_days: int) -> dict:
    report = tier_hot_to_cold(stores, now, hot_days)
    return {
        "cutoff": report.cutoff.isoformat(),
        "rows_moved": report.rows_moved,
        "partitions": report.partitions,
    }


@task(name="compact-lake", cache_policy=NO_CACHE, **STORE_RETRYING)
def compact_task(stores: Stores, target_bytes: int) -> dict:
    return stores.cold.compact(target_bytes=target_bytes).summary()


@task(name="vacuum-lake", cache_policy=NO_CACHE, **STORE_RETRYING)
def vacuum_task(stores: Stores, retention_hours: int) -> dict:
    removed = stores.cold.vacuum(retention_hours=retention_hours)
    return {"files_removed": len(removed), "retention_hours": retention_hours}
