"""Prefect-free backfill steps: the plan with finished chunks marked (or only the missing windows:
repair) and the run's summary; chunks run in `marketpipe.backfill_pipeline`."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from marketpipe.backfill import BackfillPlan, plan_backfill, request_profile
from marketpipe.calendar import bars_per_regular_session, expected_bar_starts
from marketpipe.gaps import find_gaps, repair_windows
from marketpipe.storage import Stores
from marketpipe.storage.read import read_bars


def build_plan(
    stores: Stores,
    settings,
    symbols: list[str],
    start: date,
    end: date,
    interval: str,
    source: str,
    repair: bool,
    now: pd.Timestamp,
) -> BackfillPlan:
    """The backfill plan with finished chunks marked; `repair` plans only the missing windows."""
    profile = request_profile(source, interval, settings)
    windows = None
    if repair:
        present = read_bars(stores, symbols, start, end + timedelta(days=1), interval)
        gaps = find_gaps(present, symbols, start, end, interval, now=now)
        expected = expected_bar_starts(interval, start, end, now=now)
        cap = max(len(expected), 1)
        if profile.max_bars_per_request:  # in regular-hours bars (what `expected` counts)
            raw = profile.raw_bars_per_session(interval)
            cap = max(1, profile.max_bars_per_request * bars_per_regular_session(interval) // raw)
        windows = {s: repair_windows(g, cap, expected) for s, g in gaps.items()}
    plan = plan_backfill(source, symbols, start, end, interval, profile, windows=windows)
    plan.done = stores.hot.done_chunks(plan.job_key)
    return plan


def backfill_summary(plan: BackfillPlan, results: list[dict], report: list[dict]) -> dict:
    """What a backfill run returns: the plan, what ran, and the completeness rows."""
    from marketpipe.run_reports import chunk_totals

    return {
        "job_key": plan.job_key,
        "plan": plan.describe(),
        "chunks_total": len(plan.chunks),
        "chunks_skipped": len(plan.done),
        "estimated_requests": plan.requests,
        "estimated_seconds": round(plan.seconds, 1),
        "totals": chunk_totals(results),
        "completeness": report,
    }
