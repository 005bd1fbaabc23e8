"""Prefect-free ingestion steps: plan chunks → check a fetch result → route and store it.

Tasks in `tasks/ingestion.py` wrap these 1:1; unit tests call them directly.
Invariant kept and reported: rows fetched = rows stored (hot + cold) + rows quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from marketpipe.actions_contract import validate_corporate_actions
from marketpipe.contract import QUARANTINE_COLUMNS, validate_bars
from marketpipe.providers.base import BarsQuery, FetchResult
from marketpipe.stage_timer import StageTimer
from marketpipe.storage import Stores
from marketpipe.storage.router import plan_writes

DEFAULT_LOOKBACK_DAYS = 90


@dataclass
class CheckedBatch:
    """A fetch result after the contract: rows to store and rows to quarantine."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    fetched: dict[str, int]
    empty_symbols: list[str] = field(default_factory=list)
    requests: int = 0
    corporate_actions: pd.DataFrame | None = None
    # corporate actions the actions contract rejected (not counted as bars)
    actions_quarantine: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage so far


@dataclass
class StoredBatch:
    """What one batch did to the stores, per symbol: {symbol: {fetched, hot, cold, quarantined}}."""

    per_symbol: dict[str, dict[str, int]]
    sources: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (stage_timer)

    def totals(self) -> dict[str, int]:
        keys = ("fetched", "hot", "cold", "quarantined")
        return {k: sum(c.get(k, 0) for c in self.per_symbol.values()) for k in keys}


def default_range(today: date, lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> tuple[date, date]:
    return today - timedelta(days=lookback_days), today


def chunk_symbols(symbols: list[str], size: int) -> list[tuple[str, ...]]:
    """Symbols in groups of at most `size` (one task per group, never one per row)."""
    size = max(1, size)
    return [tuple(symbols[i : i + size]) for i in range(0, len(symbols), size)]


def chunk_label(query: BarsQuery) -> str:
    """A short human name for a chunk: `AAPL…MSFT-2024-01-02..2024-03-28`."""
    syms = query.symbols
    who = syms[0] if len(syms) == 1 else f"{syms[0]}…{syms[-1]}"
    return f"{who}-{query.start:%Y-%m-%d}..{query.end:%Y-%m-%d}"


def check_batch(result: FetchResult, now: pd.Timestamp, run_id: str | None = None) -> CheckedBatch:
    """Run the Bars contract over a fetch result; adapter rejects join the quarantine."""
    timer = StageTimer(getattr(result, "timings", None))
    with timer.stage("validate"):
        checked = validate_bars(result.bars, now=now, run_id=run_id)
    quarantine = checked.quarantine
    if result.rejected is not None and not result.rejected.empty:
        rejected = result.rejected.copy()
        for col in QUARANTINE_COLUMNS:
            if col not in rejected.columns:
                rejected[col] = None
        rejected["run_id"] = run_id
        rejected["quarantined_at"] = now
        quarantine = pd.concat([quarantine, rejected[list(QUARANTINE_COLUMNS)]], ignore_index=True)
    fetched = _value_counts(result.bars)
    for sym, n in _value_counts(result.rejected).items():
        fetched[sym] = fetched.get(sym, 0) + n
    actions, actions_quarantine = result.corporate_actions, None
    if actions is not None and len(actions):
        actions, actions_quarantine = validate_corporate_actions(actions, now, run_id)
    return CheckedBatch(
        valid=checked.valid,
        quarantine=quarantine,
        fetched=fetched,
        empty_symbols=list(result.empty_symbols),
        requests=result.requests,
        corporate_actions=actions,
        actions_quarantine=actions_quarantine,
        timings=timer.as_dict(),
    )


def store_batch(
    stores: Stores,
    batch: CheckedBatch,
    now: pd.Timestamp,
    hot_days: int,
    symbols: tuple[str, ...],
    watermark_source: str | None = None,
    write_quarantine: bool = True,
) -> StoredBatch:
    """Write cold rows to the lake and hot rows to the SQL store, then quarantine bad rows.

    Every write is an upsert on natural keys, so re-running a batch changes nothing. With
    `watermark_source`, each symbol's watermark then moves to its newest stored bar. With
    `write_quarantine=False` the caller writes `batch.quarantine` itself (the importer writes a
    file's quarantine once, beside its ledger entry). Seconds per stage land in `timings`.
    """
    timer = StageTimer(batch.timings)
    with timer.stage("route"):
        plan = plan_writes(batch.valid, now, hot_days)
    if not plan.cold.empty:
        with timer.stage("cold_write"):
            stores.cold.write_bars(plan.cold)
    if not plan.hot.empty:
        with timer.stage("hot_write"):
            stores.hot.upsert_bars(plan.hot)
    with timer.stage("bookkeeping"):
        if batch.corporate_actions is not None and not batch.corporate_actions.empty:
            stores.hot.upsert_corporate_actions(batch.corporate_actions)
        if watermark_source and not batch.valid.empty:
            advance_watermarks(stores, watermark_source, batch.valid)
        # Quarantine rows are appended (no natural key), so they go last: a store failure before
        # this point is retried without having written them, and a retry never quarantines twice.
        if write_quarantine and not batch.quarantine.empty:
            stores.hot.write_quarantine(batch.quarantine)
        if batch.actions_quarantine is not None and not batch.actions_quarantine.empty:
            stores.hot.write_quarantine(batch.actions_quarantine)
        per_symbol = _count_per_symbol(
            symbols, batch.fetched, plan.hot, plan.cold, batch.quarantine
        )
    return StoredBatch(
        per_symbol=per_symbol, sources=_sources_per_symbol(batch.valid), timings=timer.as_dict()
    )


def add_counts(total: dict[str, dict[str, int]], part: dict[str, dict[str, int]]) -> None:
    """Sum per-symbol counts of one batch into a running total (in place)."""
    for sym, c in part.items():
        acc = total.setdefault(sym, {"fetched": 0, "hot": 0, "cold": 0, "quarantined": 0})
        for k, v in c.items():
            acc[k] = acc.get(k, 0) + int(v)


def advance_watermarks(stores: Stores, source: str, valid: pd.DataFrame) -> None:
    """Move each (symbol, interval) watermark to the newest bar just stored (never backwards)."""
    newest = valid.groupby(["symbol", "interval"])["ts"].max()
    for (sym, interval), last in newest.items():
        stores.hot.set_watermark(source, str(sym), str(interval), pd.Timestamp(last))


def _value_counts(frame: pd.DataFrame | None) -> dict[str, int]:
    if frame is None or frame.empty:
        return {}
    return {str(k): int(v) for k, v in frame["symbol"].astype(str).value_counts().items()}


def _count_per_symbol(symbols, fetched, hot, cold, quarantine) -> dict[str, dict[str, int]]:
    """Per-symbol counts; `fetched` comes from the provider's output, the rest from the plan."""
    zero = {"fetched": 0, "hot": 0, "cold": 0, "quarantined": 0}
    counts: dict[str, dict[str, int]] = {s: dict(zero) for s in symbols}
    for sym, n in fetched.items():
        counts.setdefault(sym, dict(zero))["fetched"] = n
    for name, frame in (("hot", hot), ("cold", cold), ("quarantined", quarantine)):
        for sym, n in _value_counts(frame).items():
            counts.setdefault(sym, dict(zero))[name] = n
    return counts


def _sources_per_symbol(valid: pd.DataFrame) -> dict[str, list[str]]:
    if valid.empty:
        return {}
    pairs = valid[["symbol", "source"]].drop_duplicates()
    return {str(s): sorted(g["source"].astype(str)) for s, g in pairs.groupby("symbol")}
