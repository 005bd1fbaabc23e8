"""Backfill planning: split (symbols × dates) into chunks sized to the provider, estimate requests
and time before any request is made, and identify chunks deterministically so a re-run resumes.

One chunk = one task = one or more HTTP requests for a group of symbols over a window of sessions.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, datetime

from marketpipe.calendar import bars_in_span, bars_per_regular_session
from marketpipe.calendar import sessions as xnys_sessions


@dataclass(frozen=True)
class RequestProfile:
    """How a provider serves bars: what one request can return and how fast requests may go."""

    max_bars_per_request: int | None  # None: unbounded (synthetic, replay)
    max_days_per_request: int | None = None  # calendar-day window limit (Yahoo intraday)
    symbols_per_request: int = 1
    symbols_per_chunk: int = 1
    extra_requests_per_symbol: int = 0  # e.g. corporate-action lookups per symbol per chunk
    rate: tuple[int, float] | None = None  # (N, period seconds)
    request_seconds: float = 0.2  # typical latency of one request
    # minutes of bars the vendor returns per session before any filtering (None: regular hours)
    raw_minutes_per_session: float | None = None

    def raw_bars_per_session(self, interval: str) -> int:
        """Bars one session costs against `max_bars_per_request` (vendor hours, not ours)."""
        if self.raw_minutes_per_session is None:
            return bars_per_regular_session(interval)
        return bars_in_span(interval, self.raw_minutes_per_session)


def request_profile(source: str, interval: str, settings=None) -> RequestProfile:
    """The planning profile of a source, from its registry record (adapters own the real limits;
    the record mirrors them) and the configured rate."""
    from marketpipe.providers.registry import record

    rec = record(source)
    rate = settings.rate_limit(source) if settings is not None and rec.network else None
    return rec.request_profile(interval, rate)


@dataclass(frozen=True)
class Chunk:
    symbols: tuple[str, ...]
    start: date
    end: date
    requests: int

    @property
    def chunk_id(self) -> str:
        digest = hashlib.sha1(",".join(self.symbols).encode()).hexdigest()[:8]
        return f"{self.symbols[0]}.{len(self.symbols)}.{digest}:{self.start}:{self.end}"

    @property
    def label(self) -> str:
        who = self.symbols[0] if len(self.symbols) == 1 else f"{self.symbols[0]}…{self.symbols[-1]}"
        return f"{who}-{self.start:%Y%m%d}-{self.end:%Y%m%d}"


@dataclass
class BackfillPlan:
    source: str
    interval: str
    chunks: list[Chunk]
    profile: RequestProfile
    job_key: str = ""
    done: set[str] = field(default_factory=set)

    @property
    def pending(self) -> list[Chunk]:
        return [c for c in self.chunks if c.chunk_id not in self.done]

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.pending)

    @property
    def seconds(self) -> float:
        return estimate_seconds(self.requests, self.profile)

    def describe(self) -> str:
        total = len(self.chunks)
        return (
            f"backfill plan: {self.source} {self.interval}, {total} chunks "
            f"({len(self.done)} already done), {self.requests} requests, "
            f"about {format_duration(self.seconds)}"
            + (f" at {self.profile.rate[0]}/{self.profile.rate[1]:g}s" if self.profile.rate else "")
        )


def estimate_seconds(requests: int, profile: RequestProfile) -> float:
    """Wall time for `requests` under a strict N-per-period limit plus request latency."""
    if requests <= 0:
        return 0.0
    wait = 0.0
    if profile.rate:
        n, period = profile.rate
        wait = max(0, math.ceil(requests / n) - 1) * period
    return wait + requests * profile.request_seconds


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def session_windows(
    start: date, end: date, interval: str, profile: RequestProfile
) -> list[tuple[date, date, int]]:
    """Split the sessions in [start, end] into windows one request can serve: (first, last, bars)."""
    days = list(xnys_sessions(start, end))
    if not days:
        return []
    per_session = bars_per_regular_session(interval)
    raw_per_session = profile.raw_bars_per_session(interval)
    max_sessions = len(days)
    if profile.max_bars_per_request:
        max_sessions = max(1, profile.max_bars_per_request // raw_per_session)
    out: list[tuple[date, date, int]] = []
    i = 0
    while i < len(days):
        j = min(i + max_sessions, len(days))
        if profile.max_days_per_request:
            while (
                j - 1 > i and (_d(days[j - 1]) - _d(days[i])).days >= profile.max_days_per_request
            ):
                j -= 1
        out.append((_d(days[i]), _d(days[j - 1]), (j - i) * per_session))
        i = j
    return out


def _d(x) -> date:
    """A plain `date` (session labels are Timestamps, which are `date` subclasses too: a
    Timestamp leaking into a chunk made Polygon URLs like `/2024-01-02T00:00:00/…`)."""
    return x.date() if isinstance(x, datetime) else x


def plan_backfill(
    source: str,
    symbols: list[str],
    start: date,
    end: date,
    interval: str,
    profile: RequestProfile,
    windows: dict[str, list[tuple[date, date]]] | None = None,
) -> BackfillPlan:
    """Chunks for every symbol over [start, end] (or only the given per-symbol windows: repair)."""
    chunks: list[Chunk] = []
    if windows is None:
        groups = [
            tuple(symbols[i : i + profile.symbols_per_chunk])
            for i in range(0, len(symbols), profile.symbols_per_chunk)
        ]
        for first, last, _bars in session_windows(start, end, interval, profile):
            for group in groups:
                chunks.append(Chunk(group, first, last, _requests_for(group, profile)))
    else:
        for sym in symbols:
            for lo, hi in windows.get(sym, []):
                for first, last, _bars in session_windows(lo, hi, interval, profile):
                    chunks.append(Chunk((sym,), first, last, _requests_for((sym,), profile)))
    # a repair plan is keyed by the windows it repairs, so a later repair of new gaps starts afresh
    scope = "all" if windows is None else repr(sorted((s, tuple(w)) for s, w in windows.items()))
    key_src = f"{source}|{interval}|{','.join(symbols)}|{start}|{end}|{scope}"
    return BackfillPlan(
        source=source,
        interval=interval,
        chunks=chunks,
        profile=profile,
        job_key=hashlib.sha1(key_src.encode()).hexdigest()[:16],
    )


def _requests_for(group: tuple[str, ...], profile: RequestProfile) -> int:
    if profile.max_bars_per_request is None and profile.rate is None:
        return 0  # local sources make no HTTP requests
    per = math.ceil(len(group) / profile.symbols_per_request)
    return per + profile.extra_requests_per_symbol * len(group)
