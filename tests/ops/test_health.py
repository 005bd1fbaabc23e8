"""Health score rules, the exchange-aware deadline, store health, and `marketpipe monitor --once`
against a real-time session whose metrics are served on loopback."""

from __future__ import annotations

import json
import socket
import threading
from datetime import date, timedelta

import pandas as pd
import pandas_market_calendars as mcal
import pytest

from marketpipe import health, metrics
from marketpipe.bars import conform_bars
from marketpipe.health import Thresholds


def _daily(symbol: str, days) -> pd.DataFrame:
    n = len(days)
    return conform_bars(
        pd.DataFrame(
            {
                "symbol": [symbol] * n,
                "interval": ["1d"] * n,
                "ts": [pd.Timestamp(d, tz="UTC") for d in days],
                "open": [10.0] * n,
                "high": [11.0] * n,
                "low": [9.0] * n,
                "close": [10.5] * n,
                "volume": [1000.0] * n,
                "source": ["synthetic"] * n,
            }
        )
    )


def _pmc_close(day: str) -> pd.Timestamp:
    sched = mcal.get_calendar("XNYS").schedule(start_date=day, end_date=day)
    return pd.Timestamp(sched["market_close"].iloc[0]).tz_convert("UTC")


def test_the_deadline_follows_early_closes_and_holidays():
    # 2024-11-29 closes early (13:00 ET); 2024-11-28 is Thanksgiving
    close = _pmc_close("2024-11-29")
    assert health.deadline_of(date(2024, 11, 29), 120) == close + timedelta(minutes=120)
    before = close + timedelta(minutes=119)
    after = close + timedelta(minutes=121)
    assert health.due_session(before, 120) == date(2024, 11, 27)  # skips the holiday
    assert health.due_session(after, 120) == date(2024, 11, 29)
    # a regular day at the same wall time is not due yet (its close is three hours later)
    regular = _pmc_close("2024-12-02")
    assert regular - close.replace(day=2, month=12) == timedelta(hours=3)
    assert health.due_session(after.replace(day=2, month=12), 120) == date(2024, 11, 29)


def test_score_rules_as_documented():
    t = Thresholds(latency_max_ms=250, error_rate_max=0.05, health_score_min=80)
    perfect = health.score(t, symbols=4, expected_bars=80, present_bars=80, runs_finished=20)
    assert perfect.score == 100 and perfect.healthy and perfect.reasons == []
    h = health.score(
        t,
        due=date(2024, 11, 29),
        symbols=4,
        stale=["AAPL"],  # 40 × 1/4 = 10
        expected_bars=80,
        present_bars=76,  # 20 × 4/80 = 1
        runs_finished=20,
        runs_failed=1,  # 5 % of 5 % max → 20
        latency_ms=300,  # > 250 → 10
        ticks=10_000,
        drops=50,  # 0.5 % of a 1 % full penalty → 5
    )
    assert h.penalties == {
        "freshness": 10.0,
        "completeness": 1.0,
        "error_rate": 20.0,
        "latency": 10.0,
        "drops": 5.0,
    }
    assert h.score == 54 and not h.healthy
    assert "1/4 symbols stale for 2024-11-29 (AAPL)" in h.line()
    assert health.score(t).score == 100  # no data costs nothing


def test_store_health_from_real_rows(tmp_path):
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    settings = load_settings(
        data_dir=tmp_path,
        hot_url=f"sqlite:///{tmp_path / 'hot.db'}",
        cold_url=str(tmp_path / "lake"),
    )
    now = pd.Timestamp("2024-12-03 15:00", tz="UTC")  # due session: Mon 2024-12-02
    days = [d.date() for d in mcal.get_calendar("XNYS").valid_days("2024-10-01", "2024-12-02")]
    stores = open_stores(settings)
    try:
        stores.hot.upsert_bars(_daily("AAPL", days))
        stores.hot.upsert_bars(_daily("MSFT", [d for d in days[:-1] if d != days[-5]]))
        ok = stores.hot.start_job("ingestion", {}, flow_run_id="a")
        stores.hot.finish_job(ok, "success", {})
        bad = stores.hot.start_job("ingestion", {}, flow_run_id="b")
        stores.hot.finish_job(bad, "failed", {}, error="boom")
        h = health.store_health(stores, Thresholds(), now=now)
        via_status = health.health_for_status(stores, settings, now=now)
    finally:
        stores.close()
    assert h.due_session == "2024-12-02"
    assert h.penalties["freshness"] == 20.0  # MSFT lacks the due session
    assert h.penalties["completeness"] == round(20 * 2 / 40, 1)  # MSFT misses 2 of 20
    assert h.penalties["error_rate"] == 20.0  # 1 of 2 runs failed
    assert h.score == 59 and via_status["score"] == 59 and via_status["line"] == h.line()


def test_live_stages_and_the_bottleneck():
    def samples(fetch_s, store_s, items):
        return {
            ("pipeline_stage_seconds_sum", (("job", "historical"), ("stage", "fetch"))): fetch_s,
            ("pipeline_stage_seconds_count", (("job", "historical"), ("stage", "fetch"))): 10,
            ("pipeline_stage_seconds_sum", (("job", "historical"), ("stage", "store"))): store_s,
            ("pipeline_stage_seconds_count", (("job", "historical"), ("stage", "store"))): 10,
            ("pipeline_stage_items_total", (("job", "historical"), ("stage", "store"))): items,
            ("pipeline_queue_depth", (("job", "historical"), ("stage", "chunks"))): 7,
        }

    prev = samples(1.0, 1.0, 0)
    prev[("pipeline_stage_seconds_count", (("job", "historical"), ("stage", "fetch")))] = 0
    prev[("pipeline_stage_seconds_count", (("job", "historical"), ("stage", "store")))] = 0
    live = health.live_stages(prev, samples(9.0, 2.0, 500), dt=10.0)
    by = {s.stage: s for s in live.stages}
    assert by["fetch"].busy == 0.8 and by["fetch"].latency_ms == 800.0
    assert by["store"].throughput_per_s == 50.0 and by["store"].latency_ms == 100.0
    assert by["chunks"].queue == 7
    assert live.bottleneck.stage == "fetch"
    assert live.worst_latency_ms() == 800.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fresh_metrics():
    metrics._reset_for_tests()
    yield
    metrics._reset_for_tests()


def test_monitor_once_shows_a_running_session(fresh_metrics, tmp_path, monkeypatch, capsys):
    from cli.main import main
    from marketpipe.realtime.session import RealtimeSession
    from marketpipe.realtime.sink import HotStoreSink
    from marketpipe.realtime.sources import SyntheticTickSource
    from marketpipe.storage.hot import SqlHotStore

    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", f"sqlite:///{tmp_path / 'hot.db'}")
    monkeypatch.setenv("MARKETPIPE_COLD_URL", str(tmp_path / "lake"))
    monkeypatch.delenv("MARKETPIPE_METRICS_PORT", raising=False)
    port = metrics.enable(_free_port(), addr="127.0.0.1")
    hot = SqlHotStore(f"sqlite:///{tmp_path / 'rt.db'}")
    session = RealtimeSession(
        SyntheticTickSource(["AAPL", "MSFT"], 2000.0, 1),
        HotStoreSink(hot),
        bar_window=timedelta(seconds=1),
        flush_ms=100,
        reconcile=False,
    )
    streaming = threading.Event()
    session._on_progress = lambda r: streaming.set() if r.bars_written else None

    def run():
        with metrics.track_job("realtime"):
            session.run()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert streaming.wait(60), "the session never wrote bars"
        url = f"http://127.0.0.1:{port}/metrics"
        code = main(["monitor", "--once", "--json", "--metrics-url", url, "--refresh", "2.5"])
    finally:
        session.stop()
        worker.join(timeout=120)
        hot.dispose()
    frame = json.loads(capsys.readouterr().out)
    assert code == 0 and frame["health"]["healthy"]  # nothing stored, nothing stale
    assert frame["active_jobs"] == {"realtime": 1.0}
    stages = {f"{s['job']}/{s['stage']}": s for s in frame["stages"]}
    assert stages["realtime/flush"]["throughput_per_s"] > 0
    assert stages["realtime/aggregate"]["throughput_per_s"] > 0
    assert stages["realtime/queue"]["queue"] is not None
    assert frame["bottleneck"] == "realtime/flush"
    assert frame["ticks"] > 0 and frame["metrics_down"] == []
