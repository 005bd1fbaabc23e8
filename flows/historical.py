"""The `historical` flow: a chunked, resumable backfill with progress and a completeness report."""

from __future__ import annotations

from datetime import date, timedelta

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows._publish import flow_run, publish_run_reports
from marketpipe import metrics
from marketpipe.backfill_pipeline import group_chunks, group_label, stage_summary
from marketpipe.backfill_run import backfill_summary, build_plan
from marketpipe.run_reports import chunk_totals, completeness
from marketpipe.storage.read import read_bars
from marketpipe.symbols import parse_symbols
from tasks.historical import backfill_chunks


@flow(name="historical", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=True)
def historical(
    symbols: list[str],
    start: date,
    end: date,
    interval: str = "1d",
    source: str = "polygon",
    repair: bool = False,
    plan_only: bool = False,
    replay_path: str | None = None,
) -> dict:
    """Backfill [start, end] for `symbols` in provider-sized chunks; re-runs skip finished chunks.

    `repair=True` fetches only the windows that `gaps` finds missing (hot ∪ cold).
    """
    options = {"replay_path": replay_path} if replay_path else {}
    with flow_run("historical") as run:
        syms = parse_symbols(symbols)
        stores, now = run.stores, run.now
        plan = build_plan(stores, run.settings, syms, start, end, interval, source, repair, now)
        get_run_logger().info(plan.describe())
        if plan_only:
            return backfill_summary(plan, [], [])
        params = {"symbols": syms, "start": str(start), "end": str(end), "interval": interval}
        params |= {"source": source, "repair": repair, "job_key": plan.job_key}
        with run.job(params) as counts:
            total, done = len(plan.chunks), len(plan.chunks) - len(plan.pending)
            run.record_chunks(done, total, 0)
            metrics.queue_depth("historical", "chunks", len(plan.pending))  # run_chunks counts down
            progress = run.progress("backfill-progress", total, "chunks finished")
            progress.set(done)
            futures = [
                backfill_chunks.submit(
                    stores,
                    run.settings,
                    source,
                    interval,
                    group,
                    plan.job_key,
                    now,
                    run.run_id,
                    group_label(group),
                    options,
                )  # fmt: skip
                for group in group_chunks(plan.pending)
            ]
            results: list[dict] = []
            for fut in futures:
                results.extend(fut.result())
                rows = sum(r["hot"] + r["cold"] for r in results)
                run.record_chunks(done + len(results), total, rows)
                progress.set(done + len(results))
            present = read_bars(stores, syms, start, end + timedelta(days=1), interval)
            report = completeness(stores, present, syms, start, end, interval, now)
            counts.update(chunk_totals(results))
        what = f"{source} {interval} {start}..{end}"
        run.table("backfill-completeness", report, what)
        publish_run_reports(run, "backfill", report, syms, interval, start, end, what)
        window = {"symbols": syms, "start": str(start), "end": str(end)}
        return backfill_summary(plan, results, report) | window | stage_summary(results)
