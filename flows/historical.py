"""The `historical` flow: a chunked, resumable backfill with progress and a completeness report."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from flows._run import current_flow_run_id, job_run, publish_table
from marketpipe import metrics
from marketpipe.historical import build_plan, completeness
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from marketpipe.storage.read import read_bars
from marketpipe.symbols import parse_symbols
from tasks.historical import backfill_chunk


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
    settings = load_settings()
    logger = get_run_logger()
    syms = parse_symbols(symbols)
    now = pd.Timestamp.now(tz="UTC")
    options = {"replay_path": replay_path} if replay_path else {}
    stores = open_stores(settings)
    try:
        plan = build_plan(stores, settings, syms, start, end, interval, source, repair, now)
        logger.info(plan.describe())
        if plan_only:
            return _summary(plan, [], [])
        params = {
            "symbols": syms,
            "start": str(start),
            "end": str(end),
            "interval": interval,
            "source": source,
            "repair": repair,
            "job_key": plan.job_key,
        }
        run_id = current_flow_run_id()
        with job_run(stores, "historical", params, run_id) as counts:
            pending = plan.pending
            metrics.queue_depth("historical", "chunks", len(pending))  # run_chunk counts down
            total = len(plan.chunks)
            done_before = total - len(pending)
            stores.hot.update_job(
                counts["_job_id"], chunks_done=done_before, chunks_total=total, rows_so_far=0
            )
            progress = _progress_artifact(done_before, total)
            results: list[dict] = []
            futures = [
                backfill_chunk.submit(
                    stores,
                    settings,
                    source,
                    interval,
                    c,
                    plan.job_key,
                    now,
                    run_id,
                    c.label,
                    options,
                )
                for c in pending
            ]
            rows = 0
            for fut in futures:
                res = fut.result()
                results.append(res)
                rows += res["hot"] + res["cold"]
                finished = done_before + len(results)
                stores.hot.update_job(
                    counts["_job_id"], chunks_done=finished, chunks_total=total, rows_so_far=rows
                )
                _update_progress(progress, finished, total)
            present = read_bars(stores, syms, start, end + timedelta(days=1), interval)
            report = completeness(stores, present, syms, start, end, interval, now)
            counts.update(_totals(results))
        publish_table("backfill-completeness", report, f"{source} {interval} {start}..{end}")
        return _summary(plan, results, report)
    finally:
        stores.close()


def _totals(results: list[dict]) -> dict:
    keys = ("fetched", "hot", "cold", "quarantined", "requests")
    return {k: int(sum(r.get(k, 0) for r in results)) for k in keys} | {"chunks_run": len(results)}


def _summary(plan, results: list[dict], report: list[dict]) -> dict:
    return {
        "job_key": plan.job_key,
        "plan": plan.describe(),
        "chunks_total": len(plan.chunks),
        "chunks_skipped": len(plan.done),
        "estimated_requests": plan.requests,
        "estimated_seconds": round(plan.seconds, 1),
        "totals": _totals(results),
        "completeness": report,
    }


def _progress_artifact(done: int, total: int):
    try:
        return create_progress_artifact(
            progress=_pct(done, total), key="backfill-progress", description="chunks finished"
        )
    except Exception:
        return None


def _update_progress(artifact_id, done: int, total: int) -> None:
    if artifact_id is not None:
        try:
            update_progress_artifact(artifact_id, progress=_pct(done, total))
        except Exception:
            pass


def _pct(done: int, total: int) -> float:
    return 100.0 if total == 0 else round(100.0 * done / total, 1)
