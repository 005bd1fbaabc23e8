"""Polygon websocket path end to end: the real `polygon.WebSocketClient` against a local server."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import polygon.websocket  # noqa: F401 - imported up front so session timings exclude the import
import pytest
from polygon_ws_server import PolygonWsServer
from pydantic import SecretStr
from rt_support import MemorySink, RestFake, assert_bars_equal, expected_bars, make_ticks

from marketpipe.errors import FatalError, MarketpipeError
from marketpipe.realtime import PolygonTickSource, RealtimeSession

SYMBOLS = ("AAPL", "MSFT")
KEY = "test-key"


def _live_ticks(seconds: float, per_sec: int = 300, seed: int = 11) -> pd.DataFrame:
    start = pd.Timestamp.now(tz="UTC") + pd.Timedelta(milliseconds=400)
    return make_ticks(SYMBOLS, start, seconds, per_sec, seed=seed)


def _session(server: PolygonWsServer, sink, rest, seconds: float, **kw) -> RealtimeSession:
    source = PolygonTickSource(SYMBOLS, SecretStr(KEY), host=server.host, connect_timeout=3.0)
    opts = dict(
        bar_window=timedelta(seconds=1),
        allowed_lateness=timedelta(milliseconds=200),
        queue_max=10_000,
        batch_size=500,
        flush_ms=50,
        duration=seconds,
        rest_backfill=rest,
        backoff=(0.3, 2.0, 1.0),
    )
    opts.update(kw)
    return RealtimeSession(source, sink, **opts)


@pytest.mark.timeout(60)
def test_drop_reconnect_and_rest_gap_fill_give_the_full_bars():
    ticks = _live_ticks(3.5)
    rest = RestFake(ticks, "1s", "1s", "polygon")
    sink = MemorySink()
    with PolygonWsServer(ticks, KEY, drop_after_ticks=len(ticks) // 2) as server:
        session = _session(server, sink, rest, seconds=3.5 + 1.4, reconcile=False)
        report = session.run()
        state = (server.connections, server.sent_ticks, report.disconnects, report.ticks_received)
        assert server.connections == 2, f"the client reconnected once: {state}"
        drop_at = pd.Timestamp(server.dropped_at_ms, unit="ms", tz="UTC")
        assert server.subscriptions == ["T.AAPL,T.MSFT,AM.AAPL,AM.MSFT"] * 2 or all(
            set(s.split(",")) == {"T.AAPL", "T.MSFT", "AM.AAPL", "AM.MSFT"}
            for s in server.subscriptions
        ), "re-subscribed after the reconnect"
    assert report.reconnects == 1 and len(report.disconnects) == 1
    assert report.disconnects[0]["last_tick_ts"] is not None
    assert report.ticks_received < len(ticks), (
        "ticks during the outage are not sent by the websocket"
    )
    assert len(rest.calls) == 1
    _, start, end = rest.calls[0]
    assert start <= drop_at <= end + pd.Timedelta(seconds=1)
    assert report.gap_filled_bars >= 2
    assert report.ticks_received == report.ticks_aggregated + report.drops + report.late_ticks
    assert_bars_equal(sink.bars_frame(), expected_bars(ticks, "1s", "1s", "polygon"))


@pytest.mark.timeout(60)
def test_reconcile_rest_wins_and_differences_are_reported():
    ticks = _live_ticks(1.5, seed=12)
    rest = RestFake(ticks, "1s", "1s", "polygon")
    wrong = rest.bars.iloc[0]
    rest.overrides[(wrong["symbol"], wrong["ts"])] = {"close": float(wrong["close"]) + 1.0}
    sink = MemorySink()
    with PolygonWsServer(ticks, KEY) as server:
        report = _session(server, sink, rest, seconds=1.5 + 1.2).run()
    assert report.reconnects == 0 and report.ticks_received == len(ticks)
    assert report.reconcile_differences == 1
    assert report.reconcile_details[0]["kind"] == "values_differ"
    assert set(report.reconcile_details[0]["fields"]) == {"close"}
    stored = sink.bars[(wrong["symbol"], "1s", wrong["ts"])]
    assert stored["close"] == pytest.approx(float(wrong["close"]) + 1.0), "REST wins"
    assert report.vendor_bars >= 1, "AM minute aggregates arrive too"
    assert report.flush_latency_p99_ms is not None


@pytest.mark.timeout(60)
def test_reconnects_past_the_bound_fail_with_a_clear_message():
    ticks = _live_ticks(1.0, seed=13)
    sink = MemorySink()
    with PolygonWsServer(ticks, KEY, drop_after_subscribe=True) as server:
        session = _session(
            server, sink, None, seconds=30, max_reconnects=2, backoff=(0.05, 2.0, 0.1)
        )
        with pytest.raises(
            MarketpipeError, match=r"2 reconnect\(s\) exhausted \(max_reconnects=2\)"
        ):
            session.run()
        assert server.connections == 3


@pytest.mark.timeout(60)
def test_bad_api_key_fails_fast_without_reconnecting():
    ticks = _live_ticks(1.0, seed=14)
    with PolygonWsServer(ticks, api_key="the-real-key") as server:
        session = _session(server, MemorySink(), None, seconds=30)
        with pytest.raises(FatalError, match="authentication failed"):
            session.run()
        assert server.connections == 1 and server.auth_failures == 1


@pytest.mark.timeout(60)
def test_unreachable_host_counts_as_a_failed_reconnect_and_fails_clearly():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens here
    source = PolygonTickSource(
        SYMBOLS, SecretStr(KEY), host=f"127.0.0.1:{port}", connect_timeout=0.5
    )
    session = RealtimeSession(
        source, MemorySink(), duration=30, max_reconnects=1, backoff=(0.05, 2.0, 0.1)
    )
    with pytest.raises(
        MarketpipeError, match=r"could not connect to 127\.0\.0\.1:\d+ within 0\.5s"
    ):
        session.run()
    assert KEY not in str(session.report.disconnects), "the key never appears in reports"


@pytest.mark.timeout(60)
def test_minute_aggregates_only_subscription_stores_vendor_minute_bars():
    ticks = _live_ticks(1.0, seed=15)
    sink = MemorySink()
    with PolygonWsServer(ticks, KEY) as server:
        source = PolygonTickSource(
            SYMBOLS, SecretStr(KEY), host=server.host, subscribe_trades=False, connect_timeout=3.0
        )
        report = RealtimeSession(source, sink, bar_window=timedelta(minutes=1), duration=2.5).run()
        assert set(server.subscriptions[0].split(",")) == {"AM.AAPL", "AM.MSFT"}
    assert report.ticks_received == 0 and report.vendor_bars >= len(SYMBOLS)
    got = sink.bars_frame()
    want = expected_bars(ticks, "1min", "1m", "polygon")
    assert list(zip(got["symbol"], got["ts"], strict=True)) == list(
        zip(want["symbol"], want["ts"], strict=True)
    )
    for col in ("open", "high", "low", "close", "volume", "vwap"):
        assert got[col].tolist() == pytest.approx(want[col].tolist()), col


def test_aggregates_only_needs_minute_bars():
    source = PolygonTickSource(SYMBOLS, SecretStr(KEY), host="127.0.0.1:1", subscribe_trades=False)
    from marketpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="bar_window=1 minute"):
        RealtimeSession(source, MemorySink(), bar_window=timedelta(seconds=1))
