"""What an ingestion run fetches (Prefect-free): each symbol's start (an explicit start, or its
watermark minus a small overlap), and the request chunks: symbols sharing a start, grouped.

Re-fetching the last bars of an incremental run catches provider revisions; writes are upserts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from marketpipe.calendar import session_date, sessions
from marketpipe.ingest import chunk_label, chunk_symbols, default_range
from marketpipe.providers.base import BarsQuery
from marketpipe.storage import Stores

OVERLAP_SESSIONS = {"1d": 3}  # intraday: re-fetch the whole watermark session


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
    recent = sessions(last - timedelta(days=back * 3 + 7), last)
    if len(recent) > back:
        return recent[-1 - back].date()
    return last - timedelta(days=back)


@dataclass(frozen=True)
class IngestionPlan:
    symbols: list[str]
    start: date  # the earliest symbol start
    end: date
    interval: str
    source: str
    incremental: bool
    chunks: list[tuple[BarsQuery, str]]  # (query, label)

    @property
    def params(self) -> dict:
        """The `job_runs` parameters of the run."""
        return {
            "symbols": self.symbols,
            "start": str(self.start),
            "end": str(self.end),
            "interval": self.interval,
            "source": self.source,
            "incremental": self.incremental,
        }


def groups_by_start(starts: dict[str, date], chunk_size: int) -> list[tuple[date, tuple[str, ...]]]:
    """Symbols sharing a start date, in chunks of at most `chunk_size`."""
    by_start: dict[date, list[str]] = {}
    for sym, d in starts.items():
        by_start.setdefault(d, []).append(sym)
    return [(d, g) for d, syms in sorted(by_start.items()) for g in chunk_symbols(syms, chunk_size)]


def plan_ingestion(
    stores: Stores,
    symbols: list[str],
    start: date | None,
    end: date,
    interval: str,
    source: str,
    chunk_size: int,
    today: date,
) -> IngestionPlan:
    """An explicit `start` fetches that range; otherwise each symbol resumes at its watermark."""
    default_start = default_range(today)[0]
    starts = {
        s: start or incremental_start(stores, source, s, interval, default_start) for s in symbols
    }
    chunks = []
    for group_start, group in groups_by_start(starts, chunk_size):
        query = BarsQuery(symbols=group, interval=interval, start=group_start, end=end)
        chunks.append((query, chunk_label(query)))
    return IngestionPlan(
        symbols=list(symbols),
        start=min(starts.values()),
        end=end,
        interval=interval,
        source=source,
        incremental=start is None,
        chunks=chunks,
    )
