"""The `processing` flow: clean, resample, adjust, features and quality over stored bars."""

from __future__ import annotations

from datetime import date

from prefect import flow

from flows._publish import flow_run, publish_run_reports
from marketpipe.ingest import chunk_symbols
from marketpipe.processing.runs import (
    chunk_label,
    processing_totals,
    processing_window,
    stored_symbols,
)
from marketpipe.symbols import parse_symbols
from tasks.processing import process_chunk


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
    with flow_run("processing") as run:
        start, end = processing_window(start, end, run.now.date())
        syms = parse_symbols(symbols) if symbols else stored_symbols(run.stores, interval)
        out = {"symbols": syms, "interval": interval, "start": str(start), "end": str(end)}
        if not syms:
            return {**out, "totals": {}, "quality": [], "failed": {}}
        with run.job({k: out[k] for k in ("symbols", "start", "end", "interval")}) as counts:
            groups = chunk_symbols(syms, chunk_size)
            progress = run.progress(
                "processing-progress", len(groups), f"{interval} {start}..{end}"
            )
            futures = [
                process_chunk.submit(
                    run.stores,
                    list(group),
                    start,
                    end,
                    interval,
                    run.now,
                    run.settings.hot_days,
                    chunk_label(group, start, end),
                    resample_to,
                )
                for group in groups
            ]
            reports = []
            for f in futures:
                reports.append(f.result())
                progress.advance()
            counts.update(processing_totals(reports))
            failed = {sym: why for r in reports for sym, why in r.get("failed", {}).items()}
            counts["symbols_failed"] = len(failed)
        for sym, why in failed.items():
            print(f"processing {sym} failed, quarantined: {why}")
        quality = [row for r in reports for row in r["quality"]]
        what = f"{interval} {start}..{end}"
        # per symbol: its quality scores (the quality table adds the quarantine reason codes)
        rows = [{"symbol": s, **_row(quality, s), "failed": failed.get(s, "")} for s in syms]
        quarantine = run.stores.hot.read_quarantine(symbols=syms, interval=interval)
        publish_run_reports(run, "processing", rows, syms, interval, start, end, what, quarantine)
        return {**out, "totals": dict(counts), "quality": quality, "failed": failed}


def _row(quality: list[dict], symbol: str) -> dict:
    """A symbol's quality summary (sessions, scores, missing, quarantined, outliers)."""
    mine = [q for q in quality if q["symbol"] == symbol]
    return {k: v for k, v in mine[0].items() if k != "symbol"} if mine else {}
