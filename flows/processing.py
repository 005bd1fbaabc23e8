"""The `processing` flow: clean, resample, adjust, features and quality over stored bars."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from prefect import flow

from flows._run import current_flow_run_id, job_run, publish_table
from marketpipe.ingest import chunk_symbols
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from marketpipe.symbols import parse_symbols
from tasks.processing import process_chunk

DEFAULT_LOOKBACK_DAYS = 90


@flow(name="processing", log_prints=True)
def processing(
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    interval: str = "1d",
    resample_to: list[str] | None = None,
    chunk_size: int = 10,
) -> dict:
    """Process stored bars for `symbols` (default: every symbol stored at `interval`)."""
    settings = load_settings()
    now = pd.Timestamp.now(tz="UTC")
    end = end or now.date()
    start = start or end - timedelta(days=DEFAULT_LOOKBACK_DAYS)
    stores = open_stores(settings)
    try:
        syms = parse_symbols(symbols) if symbols else _stored_symbols(stores, interval)
        if not syms:
            return {
                "symbols": [],
                "interval": interval,
                "start": str(start),
                "end": str(end),
                "totals": {},
                "quality": [],
            }
        params = {"symbols": syms, "start": str(start), "end": str(end), "interval": interval}
        with job_run(stores, "processing", params, current_flow_run_id()) as counts:
            futures = [
                process_chunk.submit(
                    stores,
                    list(group),
                    start,
                    end,
                    interval,
                    now,
                    settings.hot_days,
                    f"{group[0]}…{group[-1]}-{start:%Y%m%d}-{end:%Y%m%d}",
                    resample_to,
                )
                for group in chunk_symbols(syms, chunk_size)
            ]
            reports = [f.result() for f in futures]
            keys = (
                "bars_in",
                "duplicates_removed",
                "flagged",
                "features_hot",
                "features_cold",
                "quality_rows",
            )
            counts.update({k: int(sum(r[k] for r in reports)) for k in keys})
            failed = {sym: why for r in reports for sym, why in r.get("failed", {}).items()}
            counts["symbols_failed"] = len(failed)
        for sym, why in failed.items():
            print(f"processing {sym} failed, quarantined: {why}")
        quality = [row for r in reports for row in r["quality"]]
        publish_table(
            "processing-quality",
            quality or [{"symbol": "-", "sessions": 0}],
            f"quality scores {interval} {start}..{end}",
        )
        return {
            "symbols": syms,
            "interval": interval,
            "start": str(start),
            "end": str(end),
            "totals": dict(counts),
            "quality": quality,
            "failed": failed,
        }
    finally:
        stores.close()


def _stored_symbols(stores, interval: str) -> list[str]:
    stats = stores.hot.stats()
    syms = sorted(set(stats.loc[stats["interval"] == interval, "symbol"]))
    cold = {p.symbol for p in stores.cold.partitions(interval)}
    return sorted(set(syms) | cold)
