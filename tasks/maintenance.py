"""Maintenance tasks: tiering and compaction (idempotent, retried on transient store errors)."""

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
    report = stores.cold.compact(target_bytes=target_bytes)
    return {
        "partitions_compacted": len(report.partitions_compacted),
        "files_before": report.files_before,
        "files_after": report.files_after,
        "rows": report.rows,
    }
