"""Yahoo adapter: yfinance's own request + parsing code fed recorded `v8/finance/chart` payloads."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from marketpipe.errors import ConfigError, RetryableError, UnknownSymbolError
from marketpipe.providers import BarsQuery
from marketpipe.providers.yahoo import YahooProvider, plan_chunks
from marketpipe.ratelimit import RateLimiter, max_in_any_window
from tests.providers.conftest import yahoo_session


def make(fake, today=date(2025, 2, 10), limit=1000, period=1.0, unadjust=True) -> YahooProvider:
    return YahooProvider(
        unadjust_splits=unadjust,
        session=yahoo_session(fake),
        limiter=RateLimiter(limit, period, name="yahoo", margin=0.03),
        today=lambda: today,
    )


def q(interval, start, end, symbols=("AAPL",)) -> BarsQuery:
    return BarsQuery(tuple(symbols), interval, date.fromisoformat(start), date.fromisoformat(end))


def test_daily_bar_mapped_by_hand(fake_yahoo):
    fake_yahoo.add("AAPL", "chart_AAPL_1d_2020-01-02.json")
    res = make(fake_yahoo).fetch(q("1d", "2020-01-01", "2020-01-03"))
    # timestamp 1577975400 = 2020-01-02 14:30 UTC = 09:30 ET -> session 2020-01-02 at 00:00 UTC
    assert res.bars[["ts", "open", "high", "low", "close", "volume"]].to_dict("records") == [
        {
            "ts": pd.Timestamp("2020-01-02", tz="UTC"),
            "open": 74.05999755859375,
            "high": 75.1500015258789,
            "low": 73.79750061035156,
            "close": 75.0875015258789,
            "volume": 135480400.0,
        }
    ]
    assert res.bars["source"].tolist() == ["yahoo"] and res.empty_symbols == []
    assert str(res.bars["ts"].dtype) == "datetime64[us, UTC]"
    p = fake_yahoo.price_requests()[0]
    assert p["interval"] == "1d" and p["includePrePost"] in ("False", "false")


def test_split_and_dividend_into_corporate_actions(fake_yahoo):
    fake_yahoo.add("AAPL", "chart_AAPL_1d_split_dividend.json")
    res = make(fake_yahoo).fetch(q("1d", "2020-08-31", "2020-11-06"))
    assert res.corporate_actions.to_dict("records") == [
        {
            "symbol": "AAPL",
            "ex_date": date(2020, 8, 31),
            "kind": "split",
            "value": 4.0,
            "source": "yahoo",
        },
        {
            "symbol": "AAPL",
            "ex_date": date(2020, 11, 6),
            "kind": "dividend",
            "value": 0.205,
            "source": "yahoo",
        },
    ]
    first = res.bars.iloc[0]
    # auto_adjust=False: Yahoo's (split-adjusted, not dividend-adjusted) close, not adjclose 125.8267…
    assert first.ts == pd.Timestamp("2020-08-31", tz="UTC") and first.close == pytest.approx(
        129.0399932861328
    )
    assert res.bars["ts"].iloc[-1] == pd.Timestamp("2020-11-06", tz="UTC")
    assert res.bars["ts"].is_monotonic_increasing and res.bars["ts"].is_unique


def test_weekend_is_empty_not_error(fake_yahoo):
    fake_yahoo.add("AAPL", "chart_AAPL_1m_weekend.json")
    res = make(fake_yahoo).fetch(q("1m", "2025-02-01", "2025-02-02"))
    assert (
        res.bars.empty
        and res.empty_symbols == ["AAPL"]
        and list(res.bars.columns)[:3] == ["symbol", "interval", "ts"]
    )


def test_intraday_utc_bar_start_and_malformed_row(fake_yahoo):
    fake_yahoo.add("AAPL", "chart_AAPL_1m_2025-02-03.json")
    res = make(fake_yahoo).fetch(q("1m", "2025-02-03", "2025-02-03"))
    assert res.bars["ts"].tolist() == [
        pd.Timestamp("2025-02-03 14:30", tz="UTC"),
        pd.Timestamp("2025-02-03 14:31", tz="UTC"),
        pd.Timestamp("2025-02-03 14:33", tz="UTC"),
    ]
    assert res.bars["close"].tolist() == [228.51, 228.12, 228.05]
    assert len(res.rejected) == 1 and res.rejected["reason"].iloc[0] == "malformed"
    assert "close" in res.rejected["detail"].iloc[0]


def test_429_is_retryable(fake_yahoo):
    fake_yahoo.add("AAPL", "Too Many Requests", status=429, headers={"Retry-After": "3"})
    fake_yahoo.add(
        "AAPL", "chart_AAPL_1d_2020-01-02.json"
    )  # the timezone probe is answered from this
    prov = make(fake_yahoo)
    with pytest.raises(RetryableError) as info:
        prov.fetch(q("1d", "2020-01-01", "2020-01-03"))
    assert info.value.retry_after == 3.0 and "yahoo AAPL" in str(info.value)


def test_unknown_symbol(fake_yahoo):
    with pytest.raises(UnknownSymbolError, match="yahoo NOPE"):
        make(fake_yahoo).fetch(q("1d", "2020-01-01", "2020-01-03", symbols=("NOPE",)))


def test_1m_older_than_30_days_refused_before_any_request(fake_yahoo):
    with pytest.raises(ConfigError, match="last 30 days"):
        make(fake_yahoo).fetch(q("1m", "2024-12-01", "2024-12-02"))
    assert fake_yahoo.seen == []


def test_long_intraday_range_split_into_chunks(fake_yahoo):
    fake_yahoo.add("AAPL", "chart_AAPL_1m_weekend.json")
    res = make(fake_yahoo).fetch(
        q("1m", "2025-01-13", "2025-02-09")
    )  # 28 days -> 4 requests of 7 days
    chunks = [p for p in fake_yahoo.price_requests() if p["interval"] == "1m"]
    periods = [(int(p["period1"]), int(p["period2"])) for p in chunks]
    assert len(periods) == 4
    assert all(b - a <= 8 * 86400 for a, b in periods)
    assert periods[0][0] == int(pd.Timestamp("2025-01-13", tz="America/New_York").timestamp())
    assert periods[-1][1] == int(pd.Timestamp("2025-02-10", tz="America/New_York").timestamp())
    assert res.empty_symbols == ["AAPL"]


def test_plan_chunks_limits():
    today = date(2025, 6, 30)
    assert len(plan_chunks("5m", date(2025, 5, 3), date(2025, 6, 30), today)) == 1
    assert len(plan_chunks("1h", date(2024, 1, 1), date(2025, 6, 30), today)) == 1
    assert plan_chunks("1d", date(1990, 1, 1), date(2025, 6, 30), today) == [
        (date(1990, 1, 1), date(2025, 6, 30))
    ]
    with pytest.raises(ConfigError, match="5m bars only for the last 60 days"):
        plan_chunks("5m", date(2025, 4, 1), date(2025, 4, 2), today)


def test_every_request_acquires_limiter(fake_yahoo):
    fake_yahoo.add("AAPL", "chart_AAPL_1m_weekend.json")
    make(fake_yahoo, limit=3, period=0.5).fetch(q("1m", "2025-01-13", "2025-02-09"))
    times = [t for t, _, _ in fake_yahoo.seen]
    assert len(times) >= 5
    assert max_in_any_window(times, 0.5) <= 3  # on the transport clock; margin absorbs jitter


def test_503_is_retryable(fake_yahoo):
    fake_yahoo.add("AAPL", "<html>oops</html>", status=503)
    fake_yahoo.add("AAPL", "chart_AAPL_1d_2020-01-02.json")
    with pytest.raises(RetryableError, match="server error, HTTP 503"):
        make(fake_yahoo).fetch(q("1d", "2020-01-01", "2020-01-03"))


def test_yfinance_rate_limit_error_maps_to_retryable(fake_yahoo, monkeypatch):
    import yfinance as yf
    from yfinance.exceptions import YFRateLimitError

    def boom(self, *a, **kw):
        raise YFRateLimitError()

    monkeypatch.setattr(yf.Ticker, "history", boom)
    with pytest.raises(RetryableError, match="yahoo AAPL: rate limited"):
        make(fake_yahoo).fetch(q("1d", "2020-01-01", "2020-01-03"))


def test_corporate_actions_method(fake_yahoo):
    fake_yahoo.add("AAPL", "chart_AAPL_1d_split_dividend.json")
    ca = make(fake_yahoo).fetch_corporate_actions(["AAPL"], date(2020, 9, 1), date(2020, 11, 6))
    assert ca[["ex_date", "kind", "value"]].to_dict("records") == [
        {"ex_date": date(2020, 11, 6), "kind": "dividend", "value": 0.205}
    ]


def test_split_adjustment_undone_to_raw(fake_yahoo):
    """Yahoo serves 2020-08-28 (pre-split) divided by 4; raw is the tape: close 499.23."""
    fake_yahoo.add("AAPL", "chart_AAPL_1d_presplit.json")
    res = make(fake_yahoo).fetch(q("1d", "2020-08-01", "2020-11-06"))
    pre = res.bars.iloc[1]
    assert pre.ts == pd.Timestamp("2020-08-28", tz="UTC")
    assert pre.close == pytest.approx(124.8075 * 4) and pre.open == pytest.approx(126.0125 * 4)
    assert pre.volume == round(187629916 / 4)
    post = res.bars.iloc[2]  # the split's ex-date: already raw
    assert post.close == pytest.approx(129.0399932861328) and post.volume == 225702700
    divs = res.corporate_actions[res.corporate_actions["kind"] == "dividend"]
    assert divs["value"].tolist() == pytest.approx([0.82, 0.205])
    # the range's end is before "today": one extra daily request fetched later split events
    assert [p["interval"] for p in fake_yahoo.price_requests()] == ["1d", "1d"]
    as_served = make(fake_yahoo, unadjust=False).fetch(q("1d", "2020-08-01", "2020-11-06"))
    assert as_served.bars.iloc[1].close == pytest.approx(124.8075)


def test_january_ingest_stores_the_later_split_and_reads_split_adjusted(fake_yahoo, tmp_path):
    """Issue 15: ingest only January 2020; the 4:1 split of 2020-08-31 Yahoo had applied is stored,
    so `marketpipe read --adjusted` gives Yahoo's own split-adjusted close (75.0875), not the raw
    300.35. The November dividend is stored too, but January has no close of the session before
    its ex-date to measure it against, so it adjusts nothing (see processing.adjust)."""
    from marketpipe.ingest import check_batch, store_batch
    from marketpipe.storage import Stores
    from marketpipe.storage.delta_lake import DeltaLake
    from marketpipe.storage.hot import SqlHotStore

    fake_yahoo.add("AAPL", "chart_AAPL_1d_2020-01-02.json")  # the January request
    fake_yahoo.add("AAPL", "chart_AAPL_1d_split_dividend.json")  # the later events request
    res = make(fake_yahoo).fetch(q("1d", "2020-01-01", "2020-01-31"))
    assert set(map(tuple, res.corporate_actions[["ex_date", "kind", "value"]].values)) == {
        (date(2020, 8, 31), "split", 4.0),
        (date(2020, 11, 6), "dividend", 0.205),
    }
    hot = f"sqlite:///{tmp_path}/hot.db"
    stores = Stores(hot=SqlHotStore(hot), cold=DeltaLake(str(tmp_path / "lake")))
    now = pd.Timestamp("2025-02-10", tz="UTC")
    try:
        store_batch(stores, check_batch(res, now), now, hot_days=100_000, symbols=("AAPL",))
        assert len(stores.hot.read_corporate_actions(["AAPL"])) == 2
    finally:
        stores.close()
    env = {"MARKETPIPE_HOT_URL": hot, "MARKETPIPE_COLD_URL": str(tmp_path / "lake")}
    cmd = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", "read"]
    args = ["AAPL", "--start", "2020-01-01", "--end", "2020-01-31", "--interval", "1d"]
    root = Path(__file__).resolve().parents[2]
    out = {}
    for extra in ([], ["--adjusted"]):
        proc = subprocess.run(
            [*cmd, *args, *extra], env={**os.environ, **env}, cwd=root,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        frame = pd.read_csv(io.StringIO(proc.stdout))
        out[bool(extra)] = frame.loc[0, "close"]
    payload = fake_yahoo_payload("chart_AAPL_1d_2020-01-02.json")
    yahoo_close = payload["indicators"]["quote"][0]["close"][0]  # Yahoo's split-adjusted close
    assert out[False] == pytest.approx(yahoo_close * 4)  # raw, as on the tape: 300.35
    assert out[True] == pytest.approx(yahoo_close, rel=1e-12)  # 75.0875


def fake_yahoo_payload(name: str) -> dict:
    path = Path(__file__).resolve().parents[1] / "data" / "yahoo" / name
    return json.loads(path.read_text())["chart"]["result"][0]
