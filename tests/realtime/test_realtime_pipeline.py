"""Queue drop policies, lateness (revise vs quarantine), overload accounting, micro-batching."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pandas as pd
import pytest
from rt_support import MemorySink, ScriptedSource, ts_ns

from marketpipe.errors import ConfigError
from marketpipe.realtime import (
    BarAggregator,
    BoundedTickQueue,
    MicroBatcher,
    RealtimeSession,
    SyntheticTickSource,
    Tick,
)
from marketpipe.realtime.sink import default_flush


def _tick(ts: str, price: float, size: float = 10, symbol: str = "AAPL") -> Tick:
    return Tick(symbol, ts_ns(ts), price, size, "scripted")


@pytest.mark.parametrize(("policy", "kept"), [("oldest", [3, 4, 5]), ("newest", [1, 2, 3])])
def test_queue_drop_policy_and_counters(policy, kept):
    q = BoundedTickQueue(3, policy)
    dropped = q.put_many(Tick("A", i, float(i), 1, "t") for i in range(1, 6))
    assert dropped == 2
    assert [t.ts for t in q.get_many(10, 0)] == kept
    s = q.stats()
    assert (s.received, s.dropped, s.max_depth, s.depth) == (5, 2, 3, 0)


def test_bad_configuration_is_rejected_clearly():
    with pytest.raises(ConfigError, match="drop_policy"):
        BoundedTickQueue(10, "random")
    with pytest.raises(ConfigError, match="bar_window"):
        BarAggregator(timedelta(minutes=5), timedelta(0))
    with pytest.raises(ConfigError, match="bar_window"):
        BarAggregator(timedelta(seconds=7), timedelta(0))


def test_micro_batcher_flushes_on_size_or_time():
    now = [0.0]
    b = MicroBatcher(batch_size=3, flush_ms=100, clock=lambda: now[0])
    assert not b.due()
    b.add(0.0)
    b.add(0.0)
    assert not b.due()
    b.add(0.0)
    assert b.due(), "size reached"
    assert len(b.take()) == 3 and not b.due()
    b.add(0.0)
    now[0] = 0.05
    assert not b.due() and b.time_left() == pytest.approx(0.05)
    now[0] = 0.1
    assert b.due(), "flush_ms elapsed"


def test_aggregator_ohlcv_vwap_and_watermark():
    agg = BarAggregator(timedelta(seconds=1), timedelta(milliseconds=500))
    for ts, p, s in [(".200", 10, 1), (".100", 9, 3), (".900", 12, 2), (".500", 8, 4)]:
        assert agg.add(_tick(f"2024-01-02T15:00:00{ts}", p, s))
    rows, late = agg.take()
    assert late == []
    ((sym, w, o, h, low, c, v, vwap, n),) = rows
    assert (sym, o, h, low, c, v, n) == ("AAPL", 9, 12, 8, 12, 10, 4)
    assert vwap == pytest.approx((10 * 1 + 9 * 3 + 12 * 2 + 8 * 4) / 10)
    assert agg.watermark == ts_ns("2024-01-02T15:00:00.400")


@pytest.mark.timeout(30)
def test_tick_within_lateness_revises_the_flushed_bar_and_beyond_is_quarantined_late():
    steps = [
        (
            [
                _tick("2024-01-02T15:00:00.100", 10),
                _tick("2024-01-02T15:00:00.500", 11),
                _tick("2024-01-02T15:00:01.200", 12),
            ],
            0.3,
        ),
        ([_tick("2024-01-02T15:00:00.300", 15)], 0.3),  # within lateness: bar 15:00:00 revised
        ([_tick("2024-01-02T15:00:04.000", 20)], 0.3),  # watermark 15:00:02 closes 00 and 01
        ([_tick("2024-01-02T15:00:00.900", 30)], 0.1),  # beyond lateness: late
    ]
    sink = MemorySink()
    session = RealtimeSession(
        ScriptedSource(steps),
        sink,
        bar_window=timedelta(seconds=1),
        allowed_lateness=timedelta(seconds=2),
        batch_size=100,
        flush_ms=20,
        duration=10,
    )
    report = session.run()
    key = ("AAPL", "1s", pd.Timestamp("2024-01-02T15:00:00", tz="UTC"))
    bar = sink.bars[key]
    assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["trades"]) == (
        10,
        15,
        10,
        11,
        3,
    )
    assert sink.versions[key] == 2, "flushed once, then re-emitted (upserted) after the revision"
    (q,) = sink.quarantine
    assert q["reason"] == "late" and q["ts"] == key[2] and json.loads(q["payload"])["price"] == 30
    assert q["run_id"] == report.run_id
    assert (report.ticks_received, report.ticks_aggregated, report.late_ticks) == (6, 5, 1)
    assert report.quarantined == 1


def _slow_flush(sink, bars, quarantine):
    time.sleep(0.002)
    return default_flush(sink, bars, quarantine)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("policy", ["oldest", "newest"])
def test_overload_counts_add_up_for_each_drop_policy(policy):
    source = SyntheticTickSource(
        ["AAPL", "MSFT", "SPY"], 1_000_000, seed=3, paced=False, limit=20_000
    )
    sink = MemorySink()
    session = RealtimeSession(
        source,
        sink,
        bar_window=timedelta(seconds=1),
        allowed_lateness=timedelta(0),
        queue_max=64,
        drop_policy=policy,
        batch_size=50,
        flush_ms=5,
        duration=30,
        flush=_slow_flush,
    )
    r = session.run()
    assert r.ticks_received == 20_000
    assert r.drops > 0, "the tiny queue overflowed"
    assert r.max_queue_depth == 64
    assert r.ticks_received == r.ticks_aggregated + r.drops + r.late_ticks
    assert int(sink.bars_frame()["trades"].sum()) == r.ticks_aggregated, (
        "every aggregated tick is stored"
    )


@pytest.mark.timeout(30)
def test_session_ends_at_until_and_reports_progress():
    source = SyntheticTickSource(["AAPL", "MSFT"], 2_000, seed=9)
    sink = MemorySink()
    progress = []
    until = pd.Timestamp.now(tz="UTC").to_pydatetime() + timedelta(seconds=1.3)
    session = RealtimeSession(
        source,
        sink,
        bar_window=timedelta(seconds=1),
        allowed_lateness=timedelta(0),
        flush_ms=50,
        until=until,
        on_progress=progress.append,
    )
    r = session.run()
    assert r.ended_by == "deadline"
    assert 1.0 <= r.duration_s < 5.0
    assert progress and progress[-1].ticks_received > 0
    assert int(sink.bars_frame()["trades"].sum()) == r.ticks_received == r.ticks_aggregated
    assert r.flush_latency_p50_ms is not None and r.flush_duration_p50_ms is not None


def test_naive_until_is_rejected():
    from datetime import datetime

    with pytest.raises(ConfigError, match="timezone-aware"):
        RealtimeSession(
            SyntheticTickSource(["AAPL"], 10, seed=1), MemorySink(), until=datetime(2030, 1, 1)
        )


@pytest.mark.timeout(30)
def test_flush_runs_in_the_callers_context_and_sink_failures_fail_the_session():
    import contextvars

    from marketpipe.errors import MarketpipeError

    flow_ctx: contextvars.ContextVar[str] = contextvars.ContextVar("flow_ctx", default="missing")
    seen = []

    def flush(sink, bars, quarantine):
        seen.append(flow_ctx.get())
        raise OSError("disk full")

    flow_ctx.set("flow-run-1")
    source = SyntheticTickSource(["AAPL"], 1_000_000, seed=2, paced=False, limit=5_000)
    session = RealtimeSession(
        source, MemorySink(), bar_window=timedelta(seconds=1), duration=20, flush=flush
    )
    with pytest.raises(MarketpipeError, match="realtime session failed: disk full"):
        session.run()
    assert seen and set(seen) == {"flow-run-1"}, "the flush callable sees the caller's contextvars"
