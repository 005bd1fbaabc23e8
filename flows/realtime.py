"""The `realtime` flow (deployment `realtime-session`): stream ticks into bars for one session.

`mode="realtime"` streams only; `mode="hybrid"` also fills outages over REST and reconciles the
session's bars with REST at the end (REST wins). Runs until the XNYS close or `duration_s`; a
SIGTERM (what Prefect sends on cancellation) stops it cleanly after flushing everything held.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from prefect import flow, get_run_logger

from flows._publish import flow_run
from marketpipe.realtime.session import RealtimeSession, install_sigterm
from marketpipe.realtime.sink import HotStoreSink
from marketpipe.realtime.wiring import (
    COUNT_KEYS,
    REPORT_KEYS,
    SessionProgress,
    check_mode,
    session_close,
    tick_source,
)
from marketpipe.report_render import quality_table
from marketpipe.symbols import parse_symbols
from tasks.realtime import flush_batch


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
    tick_limit: int | None = None,
) -> dict:
    """One streaming session; returns ticks/s, drops, late ticks and flush latency p50/p99."""
    check_mode(mode)
    logger = get_run_logger()
    window = timedelta(seconds=bar_window_s)
    with flow_run("realtime") as run:
        syms = parse_symbols(symbols or run.settings.symbols)
        until = None
        if not duration_s:
            until, reason = session_close(run.now)
            if until is None:  # scheduled on a holiday or after the close: nothing to stream
                logger.info("skipping: %s", reason)
                return {"skipped": reason}
        src, rest = tick_source(
            source, syms, run.settings, window, ticks_per_sec, seed, mode, tick_limit
        )
        params = {"mode": mode, "source": source, "symbols": syms, "duration_s": duration_s}
        total_s = duration_s or (until - pd.Timestamp.now(tz="UTC")).total_seconds()
        with run.job(params | {"bar_window_s": bar_window_s}) as counts:
            sink = run.progress_sink("realtime-progress", "session time elapsed")
            session = RealtimeSession(
                src,
                HotStoreSink(run.stores.hot),
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
                on_progress=SessionProgress(total_s, sink, logger).update,
                run_id=run.run_id[:12],
            )
            restore = install_sigterm(session)
            try:
                report = session.run().to_dict()
            finally:
                restore()
            counts.update({k: report[k] for k in COUNT_KEYS})
        summary = {k: report[k] for k in REPORT_KEYS}
        what = f"{mode} session {','.join(syms)}"
        run.table("realtime-session", [summary], what)
        late = run.stores.hot.read_quarantine(symbols=syms, run_id=run.run_id[:12])
        run.table("realtime-quality", quality_table([{"symbol": s} for s in syms], late), what)
        logger.info("session ended (%s): %s", report["ended_by"], summary)
        return summary
