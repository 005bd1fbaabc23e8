"""What runs report (Prefect-free): per-symbol rows and totals, completeness, the coverage report.

The flows publish these (tables, markdown) and return them; nothing here knows Prefect.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from marketpipe.calendar import last_closed_session, session_date
from marketpipe.coverage import completeness_rows, coverage_matrix, window_coverage
from marketpipe.ingest import StoredBatch
from marketpipe.report_render import coverage_markdown, coverage_summary
from marketpipe.storage import Stores
from marketpipe.storage.read import read_bars

COUNT_KEYS = ("fetched", "hot", "cold", "quarantined")


def ingestion_rows(stored: list[StoredBatch], symbols: list[str], source: str) -> dict:
    """`{"rows": [per symbol: source, fetched, hot, cold, quarantined], "totals": {…}}`."""
    rows, totals = [], dict.fromkeys(COUNT_KEYS, 0)
    sources: dict[str, list[str]] = {}
    per_symbol: dict[str, dict[str, int]] = {}
    for batch in stored:
        per_symbol.update(batch.per_symbol)
        sources.update(batch.sources)
    for sym in symbols:
        c = per_symbol.get(sym, dict.fromkeys(COUNT_KEYS, 0))
        rows.append({"symbol": sym, "source": ",".join(sources.get(sym, [])) or source, **c})
        for k in totals:
            totals[k] += int(c.get(k, 0))
    return {"rows": rows, "totals": totals}


def chunk_totals(results: list[dict]) -> dict:
    """Sums of a backfill's chunk results, plus how many chunks ran."""
    keys = (*COUNT_KEYS, "requests")
    return {k: int(sum(r.get(k, 0) for r in results)) for k in keys} | {"chunks_run": len(results)}


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

    The same rows back the flows' `*-completeness` artifacts. `bars` is hot ∪ cold over
    [start, end] when the caller already read it; None reads it here.
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    if bars is None:
        bars = read_bars(stores, symbols, start, end + timedelta(days=1), interval)
    coverage = window_coverage(bars, None, symbols, interval, start, end, now=now)
    newest = bars.groupby("symbol")["ts"].max() if len(bars) else pd.Series(dtype=object)
    last_bars = {s: pd.Timestamp(newest[s]) if s in newest.index else None for s in symbols}
    quarantined = {
        s: int(stores.hot.count_quarantine(symbols=[s], interval=interval)) for s in symbols
    }
    return completeness_rows(coverage, last_bars, quarantined, interval, last_closed_session(now))


HISTORY_DAYS = {"1d": 730}  # how far back the coverage picture shows stored history
INTRADAY_HISTORY_DAYS = 60


def coverage_report(
    stores: Stores,
    symbols: list[str],
    interval: str,
    start: date,
    end: date,
    title: str,
    now: pd.Timestamp | None = None,
    notes: list[str] | None = None,
) -> tuple[str, dict]:
    """(markdown with the coverage picture, summary) for the run's window [start, end], shown
    inside the stored history around it (from the first stored bar, at most `HISTORY_DAYS`
    back); the summary counts the run's window only."""
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    back = HISTORY_DAYS.get(interval, INTRADAY_HISTORY_DAYS)
    lo = min(start, end - timedelta(days=back))
    bars = read_bars(stores, symbols, lo, end + timedelta(days=1), interval)
    if len(bars):
        lo = min(start, session_date(bars["ts"].min(), interval))
    else:
        lo = start
    quarantine = stores.hot.read_quarantine(symbols=symbols, interval=interval)
    history = coverage_matrix(bars, quarantine, symbols, interval, lo, end, now=now)
    window = [c for c in history.columns if start <= c <= end]
    summary = {"sessions": len(window), "symbols": coverage_summary(history[window])}
    return coverage_markdown(history, title, notes, window=(start, end)), summary
