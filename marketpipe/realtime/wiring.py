"""How a real-time run is put together (Prefect-free): which session window to stream, which tick
source and REST counterpart a source name means, and a throttled progress report.

The `realtime` flow calls these and passes its Prefect flush task; nothing here knows Prefect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import pandas as pd

from marketpipe.calendar import exchange_date, is_session, session_bounds
from marketpipe.errors import ConfigError
from marketpipe.realtime.rest import RestBackfill, polygon_rest, synthetic_rest
from marketpipe.realtime.sources import PolygonTickSource, SyntheticTickSource
from marketpipe.settings import Settings

REPORT_KEYS = (
    "ticks_received",
    "ticks_per_sec",
    "bars_written",
    "drops",
    "late_ticks",
    "max_queue_depth",
    "avg_queue_depth",
    "flushes",
    "reconnects",
    "gap_filled_bars",
    "reconcile_differences",
    "flush_latency_p50_ms",
    "flush_latency_p99_ms",
    "duration_s",
    "ended_by",
)
COUNT_KEYS = ("ticks_received", "bars_written", "drops", "late_ticks", "quarantined")
MODES = ("realtime", "hybrid")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"mode must be realtime or hybrid for a session (got {mode!r})")
    return mode


def session_close(now: pd.Timestamp | None = None) -> tuple[pd.Timestamp | None, str]:
    """Today's close, or (None, why) when there is no session left to stream today."""
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    today = exchange_date(now)
    if not is_session(today):
        return None, f"{today} is not an XNYS session (pass duration_s to stream anyway)"
    close = pd.Timestamp(session_bounds(today)[1])
    if close <= now:
        return None, f"the {today} session has closed (pass duration_s to stream anyway)"
    return close, ""


def tick_source(
    name: str,
    symbols: list[str],
    settings: Settings,
    window: timedelta,
    ticks_per_sec: float,
    seed: int,
    mode: str,
    tick_limit: int | None = None,
) -> tuple[object, RestBackfill | None]:
    """(tick source, REST backfill for hybrid mode or None) for a source name; `tick_limit` ends
    a synthetic stream after that many ticks (the session then ends `source_exhausted`)."""
    if name == "synthetic":
        src = SyntheticTickSource(symbols, ticks_per_sec, seed, limit=tick_limit)
        return src, (synthetic_rest(src, window) if mode == "hybrid" else None)
    if name == "polygon":
        if settings.polygon_api_key is None:
            raise ConfigError(
                "POLYGON_API_KEY is not set (deployment runs: the marketpipe-polygon block)"
            )
        src = PolygonTickSource(
            symbols,
            settings.polygon_api_key,
            settings.polygon_ws_host,
            secure=settings.polygon_ws_secure,
        )
        if mode != "hybrid":
            return src, None
        from marketpipe.providers import build_provider

        return src, polygon_rest(build_provider("polygon", settings), window)
    raise ConfigError(f"real-time source must be synthetic or polygon (got {name!r})")


class SessionProgress:
    """The session's progress hook: a log line and a percent of session time, at most every
    `every_s` seconds (`clock` is injectable so tests need no sleep)."""

    def __init__(
        self,
        total_s: float,
        send: Callable[[float, str], None] | None,
        logger: logging.Logger | logging.LoggerAdapter,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total = max(total_s, 1.0)
        self.send = send
        self.logger = logger
        self.every_s = every_s
        self.clock = clock
        self.t0 = clock()
        self.last = 0.0

    def update(self, report) -> None:
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last = now
        pct = min(100.0, 100.0 * (now - self.t0) / self.total)
        self.logger.info(
            "session %.0f%%: %s ticks, %s bars written, %s dropped, %s late, queue max %s",
            pct,
            report.ticks_received,
            report.bars_written,
            report.drops,
            report.late_ticks,
            report.max_queue_depth,
        )
        if self.send is not None:
            self.send(round(pct, 1), "session time elapsed")
