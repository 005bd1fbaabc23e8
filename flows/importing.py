"""The `import` flow (bar files → contract → hot/cold, a ledger of finished files) and replay."""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows._artifacts import RunProgress, publish_quality_table
from flows._run import current_flow_run_id, job_run, publish_table
from marketpipe import importer
from marketpipe.importer_read import BATCH_ROWS, Selection
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from tasks.importing import import_group, replay_file


@flow(name="import", task_runner=ThreadPoolTaskRunner(max_workers=1), log_prints=True)
def import_bars(
    paths: list[str],
    symbol: str | None = None,
    interval: str | None = None,
    batch_rows: int = BATCH_ROWS,
    force: bool = False,
) -> dict:
    """Import bar files (paths, directories, globs, s3:// prefixes); finished files are skipped."""
    settings = load_settings()
    run_id, now = current_flow_run_id(), pd.Timestamp.now(tz="UTC")
    opts = importer.source_storage_options(settings)
    refs = importer.discover(paths, opts)
    stores = open_stores(settings)
    try:
        todo, skipped = (refs, []) if force else importer.pending(stores, refs)
        importer.notify_planned(len(todo), len(skipped))
        params = {"paths": list(paths), "files": len(refs), "skipped": len(skipped)}
        options = dict(
            selection=Selection(interval=interval),
            now=now,
            hot_days=settings.hot_days,
            run_id=run_id,
            symbol=symbol,
            batch_rows=batch_rows,
            storage_options=opts,
        )
        with job_run(stores, "import", params, run_id) as counts:
            groups = importer.group_small(todo)
            futures = [
                import_group.submit(stores, g, importer.group_label(g), options) for g in groups
            ]
            progress = RunProgress(len(todo), "import-progress", f"{len(todo)} files")
            reports: list[importer.FileReport] = []
            for fut in as_completed(futures):
                done = fut.result()
                reports.extend(done)
                progress.advance(len(done))
            report = importer.summarise(reports, skipped)
            counts.update(report["totals"], files=report["files"])
        publish_table("import-summary", importer.summary_rows(reports), f"run {run_id}")
        publish_table("import-stages", importer.stage_rows(report), report["slowest_stage"] or "")
        for line in report["failed"]:
            get_run_logger().error("import failed: %s", line)
        return {
            "run_id": run_id,
            "hot": settings.hot_url_masked,
            "cold": settings.cold_url_resolved,
            **report,
        }
    finally:
        stores.close()


def replay_ingestion(replay_path, symbols, start, end, interval: str) -> dict:
    """`run --source replay` inside the ingestion flow: the file streamed once, in batches.

    By default every symbol and every date in the file; `symbols`/`start`/`end` narrow it.
    """
    from marketpipe.providers.replay import ReplayProvider

    settings = load_settings()
    run_id, now = current_flow_run_id(), pd.Timestamp.now(tz="UTC")
    provider = ReplayProvider(replay_path)
    bar_file = provider.open()
    wanted = tuple(s.upper() for s in symbols) if symbols else None
    provider.check_symbols(bar_file, wanted)
    selection = Selection(wanted, interval, start, end)
    options = dict(
        selection=selection,
        now=now,
        hot_days=settings.hot_days,
        run_id=run_id,
        symbol=provider.symbol_for(bar_file, wanted),
        source="replay",
        watermark_source="replay",
    )
    stores = open_stores(settings)
    try:
        params = {"replay_path": str(replay_path), "interval": interval, "symbols": wanted}
        with job_run(stores, "ingestion", params, run_id) as counts:
            streamed = replay_file.submit(stores, bar_file, provider.path.name, options).result()
            report = importer.replay_report(streamed, wanted, interval, start, end)
            counts.update(report["totals"])
        publish_table("ingestion-summary", report["rows"], f"replay {provider.path.name}")
        publish_table(
            "ingestion-stages", importer.stage_rows(report), report["slowest_stage"] or ""
        )
        quarantine = stores.hot.read_quarantine(interval=interval, run_id=run_id)
        publish_quality_table("ingestion-quality", report["rows"], quarantine, f"run {run_id}")
        return {
            "run_id": run_id,
            "hot": settings.hot_url_masked,
            "cold": settings.cold_url_resolved,
            **report,
        }
    finally:
        stores.close()
