"""The `ingestion` flow: fetch → validate → route → store, one task chain per symbol chunk."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows._artifacts import RunProgress, publish_coverage_report, publish_quality_table
from flows._run import current_flow_run_id, job_run, publish_table
from marketpipe import metrics
from marketpipe.historical import completeness, incremental_start
from marketpipe.ingest import StoredBatch, chunk_label, chunk_symbols, default_range
from marketpipe.providers.base import BarsQuery
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from marketpipe.storage.read import read_bars
from marketpipe.symbols import parse_symbols
from tasks.ingestion import check_chunk, fetch_chunk, store_chunk

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "SPY")


@flow(name="ingestion", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=True)
def ingestion(
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    interval: str = "1d",
    source: str = "synthetic",
    replay_path: str | None = None,
    chunk_size: int = 25,
) -> dict:
    """Ingest bars for `symbols` over [start, end] (default: AAPL, MSFT, SPY, last 90 days)."""
    settings = load_settings()
    metrics.init_from_settings(settings)
    logger = get_run_logger()
    syms = parse_symbols(list(symbols or DEFAULT_SYMBOLS))
    now = pd.Timestamp.now(tz="UTC")
    today = now.date()
    end = end or today
    run_id = current_flow_run_id()
    options = {"replay_path": replay_path} if replay_path else {}
    stores = open_stores(settings)
    try:
        # an explicit start fetches that range; otherwise each symbol resumes at its watermark
        # minus a small overlap (re-fetching the last bars catches provider revisions)
        default_start = default_range(today)[0]
        starts = {
            s: start or incremental_start(stores, source, s, interval, default_start) for s in syms
        }
        params = {
            "symbols": syms,
            "start": str(min(starts.values())),
            "end": str(end),
            "interval": interval,
            "source": source,
            "incremental": start is None,
        }
        start = min(starts.values())
        with job_run(stores, "ingestion", params, run_id) as counts:
            futures = []  # (fetch, check, store) per chunk
            for group_start, group in _groups_by_start(starts, chunk_size):
                query = BarsQuery(symbols=group, interval=interval, start=group_start, end=end)
                label = chunk_label(query)
                fetched = fetch_chunk.submit(source, query, settings, label, options)
                checked = check_chunk.submit(fetched, now, run_id, label)
                stored_f = store_chunk.submit(
                    stores, checked, now, settings.hot_days, group, label, source
                )
                futures.append((fetched, checked, stored_f))
            # resolve each chain in order, so a failed fetch/check raises its own error rather
            # than the store task's "upstream did not complete" (UnfinishedRun)
            progress = RunProgress(len(futures), "ingestion-progress", f"{source} {interval}")
            stored = []
            for chain in futures:
                stored.append([f.result() for f in chain][-1])
                progress.advance()
            report = _report(stored, syms, source)
            counts.update(report["totals"])
            metrics.batch_done("ingestion", source, len(futures))
            metrics.rows_written("ingestion", source, counts["hot"] + counts["cold"])
            present = read_bars(stores, syms, start, end + timedelta(days=1), interval)
            report["completeness"] = completeness(stores, present, syms, start, end, interval, now)
        what = f"{source} {interval} {start}..{end}"
        publish_table("ingestion-summary", report["rows"], what)
        publish_table("ingestion-completeness", report["completeness"], what)
        quarantine = stores.hot.read_quarantine(symbols=syms, interval=interval, run_id=run_id)
        publish_quality_table("ingestion-quality", report["rows"], quarantine, f"run {run_id}")
        publish_coverage_report(
            stores,
            syms,
            interval,
            start,
            end,
            "ingestion-coverage",
            f"Coverage after ingestion ({source} {interval})",
        )
        logger.info(
            "ingested %s rows: %s hot, %s cold, %s quarantined",
            *(report["totals"][k] for k in ("fetched", "hot", "cold", "quarantined")),
        )
        return {
            "run_id": run_id,
            "interval": interval,
            "start": str(start),
            "end": str(end),
            "hot": settings.hot_url_masked,
            "cold": settings.cold_url_resolved,
            **report,
        }
    finally:
        stores.close()


def _groups_by_start(starts: dict, chunk_size: int) -> list[tuple[date, tuple[str, ...]]]:
    """Symbols sharing a start date, in chunks of at most `chunk_size`."""
    by_start: dict[date, list[str]] = {}
    for sym, d in starts.items():
        by_start.setdefault(d, []).append(sym)
    return [(d, g) for d, syms in sorted(by_start.items()) for g in chunk_symbols(syms, chunk_size)]


def _report(stored: list[StoredBatch], syms: list[str], source: str) -> dict:
    rows, totals = [], {"fetched": 0, "hot": 0, "cold": 0, "quarantined": 0}
    sources: dict[str, list[str]] = {}
    per_symbol: dict[str, dict[str, int]] = {}
    for batch in stored:
        per_symbol.update(batch.per_symbol)
        sources.update(batch.sources)
    for sym in syms:
        c = per_symbol.get(sym, {"fetched": 0, "hot": 0, "cold": 0, "quarantined": 0})
        rows.append({"symbol": sym, "source": ",".join(sources.get(sym, [])) or source, **c})
        for k in totals:
            totals[k] += int(c.get(k, 0))
    return {"rows": rows, "totals": totals}
