"""Prefect-free backfill steps: run one chunk exactly once, resume from the chunk ledger,
incremental starts from watermarks, and the completeness report."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from marketpipe import ingest, metrics
from marketpipe.backfill import (
    BARS_PER_SESSION,
    BackfillPlan,
    Chunk,
    plan_backfill,
    request_profile,
)
from marketpipe.calendar import expected_bar_starts, last_closed_session
from marketpipe.gaps import find_gaps, repair_windows, session_date
from marketpipe.providers import fetch_from
from marketpipe.providers.base import BarsQuery
from marketpipe.storage import Stores
from marketpipe.storage.read import read_bars

OVERLAP_SESSIONS = {"1d": 3}  # intraday: re-fetch the whole watermark session


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
            raw = (profile.raw_bars_per_session or BARS_PER_SESSION)[interval]
            cap = max(1, profile.max_bars_per_request * BARS_PER_SESSION[interval] // raw)
        windows = {s: repair_windows(g, cap, expected) for s, g in gaps.items()}
    plan = plan_backfill(source, symbols, start, end, interval, profile, windows=windows)
    plan.done = stores.hot.done_chunks(plan.job_key)
    return plan


def run_chunk(
    stores: Stores,
    settings,
    source: str,
    interval: str,
    chunk: Chunk,
    job_key: str,
    now: pd.Timestamp,
    run_id: str,
    options: dict | None = None,
) -> dict:
    """Fetch, check and store one chunk, then record it done (only after the data is stored)."""
    query = BarsQuery(symbols=chunk.symbols, interval=interval, start=chunk.start, end=chunk.end)
    with metrics.stage("historical", "fetch") as st:
        result = fetch_from(source, query, settings, options)
        st["items"] = len(result.bars)
    with metrics.stage("historical", "validate") as st:
        batch = ingest.check_batch(result, now=now, run_id=run_id)
        st["items"] = len(batch.valid) + len(batch.quarantine)
    with metrics.stage("historical", "store") as st:
        stored = ingest.store_batch(stores, batch, now, settings.hot_days, chunk.symbols, source)
        totals = stored.totals()
        st["items"] = totals["hot"] + totals["cold"]
    stores.hot.mark_chunk_done(
        job_key, chunk.chunk_id, totals["hot"] + totals["cold"], result.requests
    )
    metrics.rows_written("historical", source, totals["hot"] + totals["cold"])
    metrics.batch_done("historical", source)
    metrics.queue_add("historical", "chunks", -1)
    return {"chunk_id": chunk.chunk_id, "requests": result.requests, **totals}


def incremental_start(
    stores: Stores, source: str, symbol: str, interval: str, default: date
) -> date:
    """Where an incremental run starts: the watermark minus a small overlap, else `default`."""
    wm = stores.hot.get_watermark(source, symbol, interval)
    if wm is None:
        return default
    last = session_date(wm, interval)
    back = OVERLAP_SESSIONS.get(interval, 0)
    if back == 0:
        return last
    expected = expected_bar_starts("1d", last - timedelta(days=back * 3 + 7), last)
    if len(expected) > back:
        return expected[-1 - back].date()
    return last - timedelta(days=back)


def completeness(
    stores: Stores,
    bars: pd.DataFrame | None,
    symbols: list[str],
    start: date,
    end: date,
    interval: str,
    now: pd.Timestamp | None = None,
) -> list[dict]:
    """Per symbol: expected, present, missing, quarantined, last bar vs the last closed session.

    The same rows back the flows' `*-completeness` artifacts and `marketpipe status`. `bars` is
    hot ∪ cold over [start, end] when the caller already read it; None reads it here.
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    if bars is None:
        bars = read_bars(stores, symbols, start, end + timedelta(days=1), interval)
    expected = expected_bar_starts(interval, start, end, now=now)
    last_closed = last_closed_session(now)
    rows = []
    for sym in symbols:
        ts = (
            bars.loc[bars["symbol"] == sym, "ts"] if not bars.empty else pd.Series([], dtype=object)
        )
        present = int(pd.DatetimeIndex(ts).isin(expected).sum()) if len(ts) else 0
        last = pd.Timestamp(ts.max()) if len(ts) else None
        last_session = session_date(last, interval) if last is not None else None
        rows.append(
            {
                "symbol": sym,
                "interval": interval,
                "expected": int(len(expected)),
                "present": present,
                "missing": int(len(expected)) - present,
                "quarantined": int(stores.hot.count_quarantine(symbols=[sym], interval=interval)),
                "last_bar": last.isoformat() if last is not None else None,
                "last_closed_session": str(last_closed),
                "fresh": bool(last_session is not None and last_session >= last_closed),
            }
        )
    return rows
