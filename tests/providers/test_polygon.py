"""Polygon adapter through the real `polygon.RESTClient` against a loopback server."""

from __future__ import annotations

import logging
import time
from datetime import date

import pandas as pd
import pytest

from marketpipe.errors import FatalError, RetryableError, UnknownSymbolError, is_retryable
from marketpipe.providers import BarsQuery, get_provider
from marketpipe.providers._http import call_with_retries
from marketpipe.providers.polygon import PolygonProvider
from marketpipe.ratelimit import RateLimiter, max_in_any_window
from marketpipe.settings import Settings
from tests.providers.conftest import POLYGON_KEY, Reply

AGGS_1D = "/v2/aggs/ticker/AAPL/range/1/day/2023-01-03/2023-01-09"
NEXT = "/v2/aggs/ticker/AAPL/range/1/day/cursor/next"


def make(server, limit=5, period=1.0, **kw) -> PolygonProvider:
    settings = Settings(
        polygon_base_url=server.url,
        polygon_rate_limit=f"{limit}/{int(period)}s",
        POLYGON_API_KEY=POLYGON_KEY,
    )
    limiter = RateLimiter(limit, period, name="polygon", margin=0.05)
    return PolygonProvider(settings, limiter=limiter, timeout=5, **kw)


def serve_daily(server) -> None:
    server.add_file(AGGS_1D, "polygon/aggs_AAPL_1d_page1.json")
    server.add_file(NEXT + "?cursor=page2", "polygon/aggs_AAPL_1d_page2.json")
    server.add_file(NEXT + "?cursor=page3", "polygon/aggs_AAPL_1d_page3.json")


def q(symbols=("AAPL",), interval="1d", start="2023-01-03", end="2023-01-09") -> BarsQuery:
    return BarsQuery(tuple(symbols), interval, date.fromisoformat(start), date.fromisoformat(end))


def test_daily_pages_follow_next_url_and_map_by_hand(polygon_server):
    serve_daily(polygon_server)
    res = make(polygon_server).fetch(q())
    assert res.requests == 3
    assert [s.path.split("?")[0] for s in polygon_server.seen] == [AGGS_1D, NEXT, NEXT]
    first = polygon_server.seen[0].path
    assert "adjusted=false" in first and "sort=asc" in first
    bars = res.bars
    # t = 1672722000000 ms = 2023-01-03 05:00 UTC = midnight ET -> session 2023-01-03 at 00:00 UTC
    assert list(bars["ts"]) == [
        pd.Timestamp(d, tz="UTC")
        for d in ["2023-01-03", "2023-01-04", "2023-01-05", "2023-01-06", "2023-01-09"]
    ]
    row = bars.iloc[0]
    assert (row.open, row.high, row.low, row.close, row.volume) == (
        130.28,
        130.9,
        124.17,
        125.07,
        112117471.0,
    )
    assert (
        row.vwap == 125.725
        and row.trades == 1021065
        and row.source == "polygon"
        and row.symbol == "AAPL"
    )
    assert res.rejected.empty and res.empty_symbols == []


def test_key_only_in_authorization_header(polygon_server, caplog):
    serve_daily(polygon_server)
    with caplog.at_level(logging.DEBUG):
        make(polygon_server).fetch(q())
    assert caplog.records and POLYGON_KEY not in caplog.text  # urllib3 logs every URL at DEBUG
    for seen in polygon_server.seen:
        assert POLYGON_KEY not in seen.path  # next_url carried apiKey=…; it was stripped
        assert seen.headers["Authorization"] == f"Bearer {POLYGON_KEY}"


def test_every_page_acquires_the_limiter_no_window_over_limit(polygon_server):
    serve_daily(polygon_server)
    prov = make(polygon_server, limit=2, period=1.0)
    started = time.monotonic()
    prov.fetch(q())
    prov.fetch(q())  # 6 requests at 2/s
    times = polygon_server.times()
    assert len(times) == 6
    assert time.monotonic() - started >= 2.0
    # checked on the server's clock: the 50 ms margin absorbs loopback transit jitter
    assert max_in_any_window(times, 1.0) <= 2


def test_intraday_missing_field_row_rejected_others_kept(polygon_server):
    # intraday windows are Unix ms spanning the ET dates: 2023-01-03 00:00 EST .. next day - 1 ms
    path = "/v2/aggs/ticker/AAPL/range/5/minute/1672722000000/1672808399999"
    polygon_server.add_file(path, "polygon/aggs_AAPL_5m.json")
    res = make(polygon_server).fetch(q(interval="5m", end="2023-01-03"))
    assert polygon_server.seen[0].path.startswith(path)
    assert list(res.bars["ts"]) == [
        pd.Timestamp("2023-01-03 14:30", tz="UTC"),
        pd.Timestamp("2023-01-03 14:35", tz="UTC"),
        pd.Timestamp("2023-01-03 14:45", tz="UTC"),
    ]
    assert pd.isna(res.bars["vwap"].iloc[2]) and pd.isna(res.bars["trades"].iloc[2])
    assert len(res.rejected) == 1
    bad = res.rejected.iloc[0]
    assert bad.reason == "malformed" and "close" in bad.detail
    assert bad.ts == pd.Timestamp("2023-01-03 14:40", tz="UTC") and '"h": 129.8' in bad.payload


def test_429_with_retry_after_is_retryable_and_defers_limiter(polygon_server):
    polygon_server.add(
        AGGS_1D, Reply(429, {"status": "ERROR", "error": "too many"}, {"Retry-After": "0.5"})
    )
    polygon_server.add_file(AGGS_1D, "polygon/aggs_AAPL_1d_page1.json")
    polygon_server.add_file(NEXT + "?cursor=page2", "polygon/aggs_AAPL_1d_page2.json")
    polygon_server.add_file(NEXT + "?cursor=page3", "polygon/aggs_AAPL_1d_page3.json")
    prov = make(polygon_server, limit=100, period=1.0)
    with pytest.raises(RetryableError) as info:
        prov.fetch(q())
    assert info.value.retry_after == 0.5 and is_retryable(info.value)
    assert "AAPL" in str(info.value) and POLYGON_KEY not in str(info.value)
    res = prov.fetch(q())  # the limiter holds this one back until Retry-After has passed
    t = polygon_server.times()
    assert t[1] - t[0] >= 0.45
    assert len(res.bars) == 5


def test_503_then_success_via_call_with_retries(polygon_server):
    """The Prefect task retries with `retry_condition_fn=is_retryable`; `call_with_retries` stands in."""
    polygon_server.add(
        AGGS_1D, Reply(503, "<html>Service Unavailable</html>", content_type="text/html")
    )
    serve_daily(polygon_server)
    prov = make(polygon_server)
    waits: list[float] = []
    res = call_with_retries(
        lambda: prov.fetch(q()), attempts=3, base_delay=0.01, sleep=waits.append
    )
    assert len(res.bars) == 5 and len(waits) == 1


def test_401_is_fatal_and_key_not_in_message(polygon_server):
    polygon_server.add_json(
        AGGS_1D, {"status": "ERROR", "error": f"bad key {POLYGON_KEY}"}, status=401
    )
    with pytest.raises(FatalError) as info:
        make(polygon_server).fetch(q())
    assert not is_retryable(info.value)
    assert POLYGON_KEY not in str(info.value) and "not authorised" in str(info.value)


def test_html_with_200_is_fatal_naming_provider_symbol_cause(polygon_server):
    polygon_server.add(AGGS_1D, Reply(200, "<html>captive portal</html>", content_type="text/html"))
    with pytest.raises(FatalError) as info:
        make(polygon_server).fetch(q())
    msg = str(info.value)
    assert msg.startswith("polygon AAPL:") and "not JSON" in msg and "text/html" in msg


def test_truncated_json_is_fatal(polygon_server):
    text = (
        polygon_server
        and (
            __import__("pathlib").Path(__file__).parents[1] / "data/polygon/aggs_AAPL_5m.json"
        ).read_text()
    )
    polygon_server.add(AGGS_1D, Reply(200, text[: len(text) // 2]))
    with pytest.raises(FatalError, match="not JSON"):
        make(polygon_server).fetch(q())


def test_connection_refused_is_retryable(polygon_server):
    prov = make(polygon_server)
    polygon_server.close()
    with pytest.raises(RetryableError, match="connection failed"):
        prov.fetch(q())


def test_unknown_ticker_vs_known_empty(polygon_server):
    polygon_server.add_file(
        "/v2/aggs/ticker/ZZZZ/range/1/day/2023-01-07/2023-01-08", "polygon/aggs_empty.json"
    )
    polygon_server.add_file(
        "/v2/aggs/ticker/AAPL/range/1/day/2023-01-07/2023-01-08", "polygon/aggs_empty.json"
    )
    polygon_server.add_json(
        "/v3/reference/tickers/ZZZZ",
        (
            __import__("pathlib").Path(__file__).parents[1] / "data/polygon/ticker_not_found.json"
        ).read_text(),
        status=404,
    )
    polygon_server.add_file("/v3/reference/tickers/AAPL", "polygon/ticker_AAPL.json")
    prov = make(polygon_server)
    res = prov.fetch(q(start="2023-01-07", end="2023-01-08"))  # a weekend
    assert res.bars.empty and res.empty_symbols == ["AAPL"] and res.requests == 2
    with pytest.raises(UnknownSymbolError, match="polygon ZZZZ"):
        prov.fetch(q(symbols=("ZZZZ",), start="2023-01-07", end="2023-01-08"))


def test_corporate_actions(polygon_server):
    polygon_server.add_file("/v3/reference/splits", "polygon/splits_AAPL.json")
    polygon_server.add_file("/v3/reference/dividends", "polygon/dividends_AAPL.json")
    ca = make(polygon_server).fetch_corporate_actions(
        ["AAPL"], date(2020, 8, 1), date(2020, 11, 30)
    )
    assert list(ca.columns) == ["symbol", "ex_date", "kind", "value", "source"]
    assert ca.to_dict("records") == [
        {
            "symbol": "AAPL",
            "ex_date": date(2020, 8, 7),
            "kind": "dividend",
            "value": 0.82,
            "source": "polygon",
        },
        {
            "symbol": "AAPL",
            "ex_date": date(2020, 8, 31),
            "kind": "split",
            "value": 4.0,
            "source": "polygon",
        },
        {
            "symbol": "AAPL",
            "ex_date": date(2020, 11, 6),
            "kind": "dividend",
            "value": 0.205,
            "source": "polygon",
        },
    ]
    paths = [s.path for s in polygon_server.seen]
    assert any("ticker=AAPL" in p and "execution_date.gte=2020-08-01" in p for p in paths)


def test_registry_builds_polygon_and_requires_key(polygon_server, monkeypatch):
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    from marketpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        get_provider("polygon", Settings(polygon_base_url=polygon_server.url))
    prov = get_provider(
        "polygon", Settings(polygon_base_url=polygon_server.url), api_key=POLYGON_KEY
    )
    assert isinstance(prov, PolygonProvider) and POLYGON_KEY not in repr(vars(prov).get("base_url"))


def test_fetch_with_actions_counts_every_request(polygon_server):
    serve_daily(polygon_server)
    polygon_server.add_file("/v3/reference/splits", "polygon/splits_AAPL.json")
    polygon_server.add_file("/v3/reference/dividends", "polygon/dividends_AAPL.json")
    res = make(polygon_server, include_actions=True).fetch(q())
    assert res.requests == 5 == len(polygon_server.seen)
    assert set(res.corporate_actions["kind"]) == {"split", "dividend"}


def test_intraday_regular_session_only_unless_extended(polygon_server):
    """1h is fetched as 30-minute buckets and resampled from the 09:30 open; extended hours keep
    Polygon's native clock-hour buckets."""
    # 30-minute buckets: 08:00 ET (pre-market), 09:30, 10:00 ET, 16:00 ET (after close)
    t30 = [1672750800000, 1672756200000, 1672758000000, 1672779600000]
    rows30 = [
        {"o": o, "h": o + 1.0, "l": o - 1.0, "c": o + 0.5, "v": 10.0, "t": ts}
        for o, ts in zip([1.0, 2.0, 3.0, 4.0], t30, strict=True)
    ]
    path30 = "/v2/aggs/ticker/AAPL/range/30/minute/1672722000000/1672808399999"
    polygon_server.add_json(path30, {"status": "OK", "adjusted": False, "results": rows30})
    regular = make(polygon_server).fetch(q(interval="1h", end="2023-01-03")).bars
    assert regular["ts"].tolist() == [pd.Timestamp("2023-01-03 14:30", tz="UTC")]  # 09:30 ET
    bar = regular.iloc[0]
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (2.0, 4.0, 1.0, 3.5, 20.0)
    assert bar.interval == "1h"
    # 1h bars: 08:00 ET (pre-market), 09:00 ET (overlaps the 09:30 open), 16:00 ET (after close)
    t = [1672750800000, 1672754400000, 1672779600000]  # 13:00, 14:00, 21:00 UTC on 2023-01-03
    rows = [{"o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 10.0, "t": ts} for ts in t]
    path = "/v2/aggs/ticker/AAPL/range/1/hour/1672722000000/1672808399999"
    polygon_server.add_json(path, {"status": "OK", "resultsCount": 3, "results": rows})
    extended = (
        make(polygon_server, extended_hours=True).fetch(q(interval="1h", end="2023-01-03")).bars
    )
    assert len(extended) == 3


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h"])
def test_intraday_bars_start_at_the_calendars_bar_starts_and_report_no_gaps(interval):
    """A full session (a summer day and the early-close day after Thanksgiving), served as Polygon
    buckets it (on the clock, pre/post-market included): every bar start is the calendar's, the
    gaps report is empty, and hourly bars aggregate the clock buckets inside each hour."""
    from marketpipe.calendar import expected_bar_starts
    from marketpipe.gaps import missing_ranges
    from tests.polygon_server import PolygonMarket, intraday_bars, serve_market

    market = PolygonMarket(["AAPL"], first=date(2024, 7, 1), last=date(2024, 12, 2))
    server = serve_market(market)
    try:
        for day in ("2024-07-02", "2024-11-29"):
            bars = make(server, limit=50).fetch(q(interval=interval, start=day, end=day)).bars
            expected = expected_bar_starts(interval, day, day)
            assert bars["ts"].tolist() == list(expected)
            assert missing_ranges("AAPL", interval, expected, bars["ts"]) == []
        hourly = bars if interval == "1h" else None
    finally:
        server.close()
    if hourly is not None:  # 2024-11-29 closes 13:00 ET: 09:30, 10:30, 11:30, 12:30-13:00
        assert len(hourly) == 4
        day = pd.Timestamp("2024-11-29")
        i = market.sessions.get_loc(day)
        src = pd.DataFrame(intraday_bars("AAPL", day, i, 30))
        src["ts"] = pd.to_datetime(src["t"], unit="ms", utc=True)
        first = src[(src["ts"] >= hourly["ts"].iloc[0]) & (src["ts"] < hourly["ts"].iloc[1])]
        assert len(first) == 2
        assert hourly["open"].iloc[0] == first["o"].iloc[0]
        assert hourly["close"].iloc[0] == first["c"].iloc[-1]
        assert hourly["high"].iloc[0] == first["h"].max()
        assert hourly["volume"].iloc[0] == first["v"].sum()


def test_adjusted_true_payload_is_refused_with_one_line(polygon_server):
    body = {"status": "OK", "adjusted": True, "resultsCount": 1,
            "results": [{"o": 1.0, "h": 2.0, "l": 0.5, "c": 1.5, "v": 10.0, "t": 1672722000000}]}  # fmt: skip
    polygon_server.add_json(AGGS_1D, body)
    with pytest.raises(FatalError) as err:
        make(polygon_server).fetch(q())
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("polygon AAPL:") and "adjusted=true" in msg
    assert not is_retryable(err.value)


def test_duplicate_split_records_of_one_event_are_merged_and_recorded(polygon_server, caplog):
    """SHOP's 10:1 split reported on 2022-06-22 and 2022-06-29: one event, not 100:1."""
    rows = [
        {"execution_date": "2022-06-22", "split_from": 1, "split_to": 10, "ticker": "SHOP"},
        {"execution_date": "2022-06-29", "split_from": 1, "split_to": 10, "ticker": "SHOP"},
        {"execution_date": "2015-06-01", "split_from": 1, "split_to": 10, "ticker": "SHOP"},
    ]
    polygon_server.add_json("/v3/reference/splits", {"status": "OK", "results": rows})
    polygon_server.add_json("/v3/reference/dividends", {"status": "OK", "results": []})
    prov = make(polygon_server)
    with caplog.at_level(logging.WARNING):
        ca = prov.fetch_corporate_actions(["SHOP"], date(2015, 1, 1), date(2022, 12, 31))
    assert ca[["ex_date", "kind", "value"]].to_dict("records") == [
        {"ex_date": date(2015, 6, 1), "kind": "split", "value": 10.0},  # a separate event
        {"ex_date": date(2022, 6, 29), "kind": "split", "value": 10.0},
    ]
    assert prov.duplicate_actions == 1
    lines = [r.getMessage() for r in caplog.records if "duplicate split" in r.getMessage()]
    assert lines == [
        "polygon SHOP: merged 1 duplicate split record(s) of one event: "
        "10:1 on 2022-06-22 (kept 2022-06-29)"
    ]


def test_dividend_types_regular_and_special_adjust_others_stored_only(polygon_server):
    rows = [
        {"ex_dividend_date": "2024-03-01", "cash_amount": 0.5, "dividend_type": "CD"},
        {"ex_dividend_date": "2024-03-01", "cash_amount": 1.0, "dividend_type": "SC"},
        {"ex_dividend_date": "2024-06-03", "cash_amount": 0.3, "dividend_type": "LT"},
        {"ex_dividend_date": "2024-09-03", "cash_amount": 0.2},
    ]
    polygon_server.add_json("/v3/reference/splits", {"status": "OK", "results": []})
    polygon_server.add_json("/v3/reference/dividends", {"status": "OK", "results": rows})
    ca = make(polygon_server).fetch_corporate_actions(["VTI"], date(2024, 1, 1), date(2024, 12, 31))
    assert ca[["ex_date", "kind", "value"]].to_dict("records") == [
        {"ex_date": date(2024, 3, 1), "kind": "dividend", "value": 0.5},
        {"ex_date": date(2024, 3, 1), "kind": "special_dividend", "value": 1.0},
        {"ex_date": date(2024, 6, 3), "kind": "dividend_lt", "value": 0.3},
        {"ex_date": date(2024, 9, 3), "kind": "dividend", "value": 0.2},
    ]
    # the corporate-actions contract stores every kind (none is quarantined as bad_kind)
    from marketpipe.actions_contract import validate_corporate_actions

    valid, quarantine = validate_corporate_actions(ca, pd.Timestamp("2025-01-02", tz="UTC"))
    assert len(valid) == 4 and quarantine.empty


def test_fetch_with_actions_asks_for_every_action_from_the_start_on(polygon_server):
    """A later split is what `read --adjusted` needs, so actions have no upper date bound."""
    serve_daily(polygon_server)
    polygon_server.add_file("/v3/reference/splits", "polygon/splits_AAPL.json")
    polygon_server.add_file("/v3/reference/dividends", "polygon/dividends_AAPL.json")
    make(polygon_server, include_actions=True).fetch(q())
    refs = [s.path for s in polygon_server.seen if "/v3/reference/" in s.path]
    assert len(refs) == 2 and all("gte=2023-01-03" in p and "lte" not in p for p in refs)
