"""The `realtime` flow (deployment `realtime-session`): stream ticks into bars for one session.

`mode="realtime"` streams only; `mode="hybrid"` also fills outages over REST and reconciles the
session's bars with REST at the end (REST wins). Runs until the XNYS close or `duration_s`; a
SIGTERM (what Prefect sends on cancellation) stops it cleanly after flushing everything held.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows._run import current_flow_run_id, job_run, publish_table
from marketpipe.calendar import is_session, session_bounds
from marketpipe.errors import ConfigError
from marketpipe.realtime.rest import polygon_rest, synthetic_rest
from marketpipe.realtime.session import RealtimeSession, install_sigterm
from marketpipe.realtime.sink import HotStoreSink
from marketpipe.realtime.sources import PolygonTickSource, SyntheticTickSource
from marketpipe.settings import Settings, load_settings
from marketpipe.storage import open_stores
from marketpipe.symbols import parse_symbols
from tasks.realtime import flush_batch

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


@flow(name="realtime", log_prints=True)
def realtime_session(
    mode: str = "realtime",
    source: str = "synthetic",
    symbols: list[str] | None = None,
    duration_s: float | None = None,
    bar_window_s: int = 1,
    allowed_lateness_s: float = 2.0,
    ticks_per_sec: float = 1000.0,
    seed: int = 0,
    queue_max: int = 100_000,
    drop_policy: str = "oldest",
    batch_size: int = 5_000,
    flush_ms: float = 250.0,
    max_reconnects: int = 5,
) -> dict:
    """One streaming session; returns ticks/s, drops, late ticks and flush latency p50/p99."""
    if mode not in ("realtime", "hybrid"):
        raise ConfigError(f"mode must be realtime or hybrid for a session (got {mode!r})")
    settings = load_settings()
    logger = get_run_logger()
    syms = parse_symbols(symbols or ["AAPL", "MSFT", "SPY"])
    window = timedelta(seconds=bar_window_s)
    until = None
    if not duration_s:
        until, reason = _session_close()
        if until is None:  # scheduled on a holiday or after the close: nothing to stream
            logger.info("skipping: %s", reason)
            return {"skipped": reason}
    tick_source, rest = _source(source, syms, settings, window, ticks_per_sec, seed, mode)
    stores = open_stores(settings)
    sink = HotStoreSink(stores.hot)
    run_id = current_flow_run_id()
    params = {
        "mode": mode,
        "source": source,
        "symbols": syms,
        "duration_s": duration_s,
        "bar_window_s": bar_window_s,
    }
    total_s = duration_s or (until - pd.Timestamp.now(tz="UTC")).total_seconds()
    progress = _Progress(total_s, logger)
    try:
        with job_run(stores, "realtime", params, run_id) as counts:
            session = RealtimeSession(
                tick_source,
                sink,
                bar_window=window,
                allowed_lateness=timedelta(seconds=allowed_lateness_s),
                queue_max=queue_max,
                drop_policy=drop_policy,
                batch_size=batch_size,
                flush_ms=flush_ms,
                duration=duration_s,
                until=until.to_pydatetime() if until is not None else None,
                rest_backfill=rest,
                reconcile=rest is not None,
                max_reconnects=max_reconnects,
                flush=lambda s, b, q: flush_batch(s, b, q),
                on_progress=progress.update,
                run_id=run_id[:12],
            )
            restore = install_sigterm(session)
            try:
                report = session.run().to_dict()
            finally:
                restore()
            counts.update(
                {
                    k: report[k]
                    for k in (
                        "ticks_received",
                        "bars_written",
                        "drops",
                        "late_ticks",
                        "quarantined",
                    )
                }
            )
        summary = {k: report[k] for k in REPORT_KEYS}
        publish_table("realtime-session", [summary], f"{mode} session {','.join(syms)}")
        logger.info("session ended (%s): %s", report["ended_by"], summary)
        return summary
    finally:
        stores.close()


def _session_close() -> tuple[pd.Timestamp | None, str]:
    """Today's XNYS close, or (None, why) when there is no session left to stream today."""
    today = pd.Timestamp.now(tz="America/New_York").date()
    if not is_session(today):
        return None, f"{today} is not an XNYS session (pass duration_s to stream anyway)"
    close = pd.Timestamp(session_bounds(today)[1])
    if close <= pd.Timestamp.now(tz="UTC"):
        return None, f"the {today} session has closed (pass duration_s to stream anyway)"
    return close, ""


def _source(name: str, syms, settings: Settings, window, ticks_per_sec, seed, mode):
    if name == "synthetic":
        src = SyntheticTickSource(syms, ticks_per_sec, seed)
        return src, (synthetic_rest(src, window) if mode == "hybrid" else None)
    if name == "polygon":
        if settings.polygon_api_key is None:
            raise ConfigError(
                "POLYGON_API_KEY is not set (deployment runs: the marketpipe-polygon block)"
            )
        src = PolygonTickSource(
            syms,
            settings.polygon_api_key,
            settings.polygon_ws_host,
            secure=settings.polygon_ws_secure,
        )
        if mode != "hybrid":
            return src, None
        from marketpipe.providers import build_provider

        return src, polygon_rest(build_provider("polygon", settings), window)
    raise ConfigError(f"real-time source must be synthetic or polygon (got {name!r})")


class _Progress:
    """A Prefect progress artifact and a log line, at most every 5 s, from the session's hook."""

    def __init__(self, total_s: float, logger):
        self.logger = logger
        self.total = max(total_s, 1.0)
        self.t0 = time.monotonic()
        self.last = 0.0
        self.artifact = None
        try:
            self.artifact = create_progress_artifact(
                0.0, key="realtime-progress", description="session time elapsed"
            )
        except Exception:
            self.artifact = None

    def update(self, report) -> None:
        now = time.monotonic()
        if now - self.last < 5:
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
        if self.artifact is None:
            return
        try:
            update_progress_artifact(self.artifact, progress=round(pct, 1))
        except Exception:
            pass
