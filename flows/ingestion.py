"""The `ingestion` flow: fetch → validate → route → store, one task chain per symbol chunk."""

from __future__ import annotations

from datetime import date, timedelta

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows._publish import flow_run, publish_run_reports
from marketpipe import metrics
from marketpipe.importer import stage_rows
from marketpipe.ingest_plan import plan_ingestion
from marketpipe.run_reports import completeness, ingestion_rows
from marketpipe.stage_timer import StageTimer
from marketpipe.storage.read import read_bars
from marketpipe.symbols import parse_symbols
from tasks.ingestion import check_chunk, fetch_chunk, store_chunk


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
    """Ingest bars for `symbols` (default: `MARKETPIPE_DEFAULT_SYMBOLS`) over [start, end]
    (default: the last 90 days, or from each symbol's watermark).

    `source="replay"` streams the file once: by default every symbol and date in it."""
    if source == "replay":
        from flows.importing import replay_ingestion

        return replay_ingestion(replay_path, symbols, start, end, interval)
    options = {"replay_path": replay_path} if replay_path else {}
    with flow_run("ingestion") as run:
        st, stores, now = run.settings, run.stores, run.now
        syms = parse_symbols(list(symbols or st.symbols))
        plan = plan_ingestion(
            stores, syms, start, end or now.date(), interval, source, chunk_size, now.date()
        )
        with run.job(plan.params) as counts:
            futures = []  # (fetch, check, store) per chunk
            for query, label in plan.chunks:
                fetched = fetch_chunk.submit(source, query, st, label, options)
                checked = check_chunk.submit(fetched, now, run.run_id, label)
                stored = store_chunk.submit(
                    stores, checked, now, st.hot_days, query.symbols, label, source
                )
                futures.append((fetched, checked, stored))
            progress = run.progress("ingestion-progress", len(futures), f"{source} {interval}")
            # resolve each chain in order, so a failed fetch/check raises its own error rather
            # than the store task's "upstream did not complete"
            results = []
            for chain in futures:
                results.append([f.result() for f in chain][-1])
                progress.advance()
            report = ingestion_rows(results, syms, source)
            timer = StageTimer()
            for r in results:
                timer.merge(r.timings)
            report.update(timer.summary())
            counts.update(report["totals"])
            metrics.batch_done("ingestion", source, len(futures))
            metrics.rows_written("ingestion", source, counts["hot"] + counts["cold"])
            lo, hi = plan.start, plan.end
            present = read_bars(stores, syms, lo, hi + timedelta(days=1), interval)
            report["completeness"] = completeness(stores, present, syms, lo, hi, interval, now)
        what = f"{source} {interval} {lo}..{hi}"
        run.table("ingestion-completeness", report["completeness"], what)
        run.table("ingestion-stages", stage_rows(report), report["slowest_stage"] or "")
        publish_run_reports(run, "ingestion", report["rows"], syms, interval, lo, hi, what)
        get_run_logger().info(
            "ingested %s rows: %s hot, %s cold, %s quarantined",
            *(report["totals"][k] for k in ("fetched", "hot", "cold", "quarantined")),
        )
        return {
            "run_id": run.run_id,
            "interval": interval,
            "start": str(lo),
            "end": str(hi),
            "hot": st.hot_url_masked,
            "cold": st.cold_url_resolved,
            **report,
        }
