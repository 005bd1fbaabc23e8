"""The `processing` flow: clean, resample, adjust, features and quality over stored bars."""

from __future__ import annotations

from datetime import date

from prefect import flow

from flows._publish import flow_run
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
        run.table(
            "processing-quality",
            quality or [{"symbol": "-", "sessions": 0}],
            f"quality scores {interval} {start}..{end}",
        )
        return {**out, "totals": dict(counts), "quality": quality, "failed": failed}
