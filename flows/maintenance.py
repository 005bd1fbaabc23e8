"""The `maintenance` flow: tier hot → cold, compact (optimize) and vacuum the lake, report gaps."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from prefect import flow, get_run_logger

from flows._run import current_flow_run_id, job_run, publish_table
from marketpipe.gaps import find_gaps
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from marketpipe.storage.read import read_bars
from tasks.maintenance import compact_task, tier_task, vacuum_task

DEFAULT_TARGET_BYTES = 128 * 1024 * 1024


@flow(name="maintenance", log_prints=True)
def maintenance(
    tier: bool = True,
    compact: bool = True,
    vacuum: bool = True,
    gaps_lookback_days: int = 30,
    interval: str = "1d",
    target_bytes: int = DEFAULT_TARGET_BYTES,
) -> dict:
    """Nightly upkeep: tiering, compaction, vacuum, and a gaps report over the last `gaps_lookback_days`."""
    settings = load_settings()
    now = pd.Timestamp.now(tz="UTC")
    stores = open_stores(settings)
    try:
        params = {
            "tier": tier,
            "compact": compact,
            "vacuum": vacuum,
            "gaps_lookback_days": gaps_lookback_days,
        }
        with job_run(stores, "maintenance", params, current_flow_run_id()) as counts:
            out: dict = {}
            if tier:
                out["tier"] = tier_task(stores, now, settings.hot_days)
                counts["rows_tiered"] = out["tier"]["rows_moved"]
            if compact:
                out["compact"] = compact_task(stores, target_bytes)
            if vacuum:  # after compaction: the files it replaced go once older than the retention
                out["vacuum"] = vacuum_task(stores, settings.lake_vacuum_retention_hours)
            out["gaps"] = _gaps_report(stores, now.date(), gaps_lookback_days, interval)
            counts["missing_bars"] = sum(r["missing"] for r in out["gaps"])
        publish_table(
            "maintenance-gaps",
            out["gaps"] or [{"symbol": "-", "missing": 0}],
            f"missing {interval} bars, last {gaps_lookback_days} days",
        )
        get_run_logger().info("maintenance: %s", {k: v for k, v in counts.items()})
        return out
    finally:
        stores.close()


def _gaps_report(stores, today: date, lookback: int, interval: str) -> list[dict]:
    stats = stores.hot.stats()
    syms = sorted(set(stats.loc[stats["interval"] == interval, "symbol"]))
    if not syms:
        return []
    start = today - timedelta(days=lookback)
    present = read_bars(stores, syms, start, today + timedelta(days=1), interval)
    found = find_gaps(present, syms, start, today, interval, now=pd.Timestamp.now(tz="UTC"))
    return [
        {"symbol": s, "missing": sum(g.count for g in gs), "ranges": len(gs)}
        for s, gs in found.items()
    ]
